//! Dead-letter queues: what is in them, and sending it back to be processed again.
//!
//! The publisher's queue drains into no queue: it holds status changes that were not published
//! (the publisher's notes for task records it could not read, and Lambda's descriptions of stream
//! batches it gave up on). Redriving it publishes their events again from the task records
//! ([`taskflow_publisher::redrive`]): AWS calls `dynamodb:GetItem` on the task table,
//! `dynamodb:GetShardIterator` / `dynamodb:GetRecords` on its stream (Lambda's shape only),
//! `events:PutEvents` on the bus, and `sqs:ReceiveMessage` / `DeleteMessage` /
//! `ChangeMessageVisibility` on the queue.

use crate::stack::StackInfo;
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use std::collections::HashSet;
use taskflow_publisher::redrive::{RedriveError, StreamBatchInfo, StreamRecords, TaskItems};

/// The dead-letter queue whose messages are redriven by publishing again.
pub const PUBLISHER: &str = "publisher";

/// One dead-letter queue of the stack and the queue it drains (none for the publisher's, whose
/// messages are redriven by publishing their status events again).
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub name: String,
    pub url: String,
    pub source_url: Option<String>,
}

/// The stack's dead-letter queues, from its outputs (`<Name>DeadLetterQueueUrl`).
pub fn queues(stack: &StackInfo) -> Vec<DeadLetters> {
    stack
        .outputs
        .iter()
        .filter_map(|(key, url)| {
            let name = key.strip_suffix("DeadLetterQueueUrl")?;
            Some(DeadLetters {
                name: name.to_lowercase(),
                url: url.clone(),
                source_url: stack.outputs.get(&format!("{name}QueueUrl")).cloned(),
            })
        })
        .collect()
}

pub fn find(stack: &StackInfo, name: &str) -> Result<DeadLetters> {
    let all = queues(stack);
    let names: Vec<_> = all.iter().map(|q| q.name.clone()).collect();
    all.into_iter()
        .find(|q| q.name == name.to_lowercase() || q.url == name)
        .with_context(|| format!("no dead-letter queue {name:?}; there are {names:?}"))
}

/// Messages in a queue (approximate, as SQS counts).
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let count = |a| attrs.get(&a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// A message as found in a dead-letter queue.
#[derive(Debug, Clone)]
pub struct Dead {
    pub message_id: String,
    pub body: String,
    pub receive_count: String,
    /// Why a redrive left it in the queue (publisher's queue only).
    pub error: Option<String>,
}

impl Dead {
    /// A received message as the commands show it (no error yet).
    fn of(m: &aws_sdk_sqs::types::Message) -> Dead {
        Dead {
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount).cloned())
                .unwrap_or_default(),
            error: None,
        }
    }
}

/// Reads every message once, at most `limit` (each is hidden while it is read, then shown again
/// unless `take`). With `take`, each is handed to `handle` and deleted only when `handle`
/// succeeds. The limit matters when redriving: a message sent back that fails again returns to
/// the queue under a new id, and must not be read again in the same pass.
pub async fn drain<F, Fut>(sqs: &aws_sdk_sqs::Client, url: &str, take: bool, limit: usize, mut handle: F) -> Result<usize>
where
    F: FnMut(Dead, aws_sdk_sqs::types::Message) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut seen = HashSet::new();
    let mut handles = Vec::new();
    while seen.len() < limit {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((limit - seen.len()).clamp(1, 10) as i32)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        let fresh: Vec<_> = messages.into_iter().filter(|m| seen.insert(m.message_id.clone().unwrap_or_default())).collect();
        if fresh.is_empty() {
            break;
        }
        for m in fresh {
            let dead = Dead::of(&m);
            let receipt = m.receipt_handle.clone().unwrap_or_default();
            handle(dead, m).await?;
            if take {
                sqs.delete_message().queue_url(url).receipt_handle(&receipt).send().await?;
            } else {
                handles.push(receipt);
            }
        }
    }
    // Looked at, not taken: visible again at once.
    for receipt in handles {
        sqs.change_message_visibility().queue_url(url).receipt_handle(receipt).visibility_timeout(0).send().await?;
    }
    Ok(seen.len())
}

/// Moves a dead-letter queue's messages back to the queue they came from; for the publisher's,
/// publishes their status events again ([`redrive_publisher`]). Returns how many were moved or
/// published (with `dry_run`: how many would be handled).
pub async fn redrive(stack: &StackInfo, name: &str, dry_run: bool, mut report: impl FnMut(&Dead)) -> Result<usize> {
    let queue = find(stack, name)?;
    let Some(source) = queue.source_url.clone() else {
        if queue.name == PUBLISHER {
            return redrive_publisher(stack, &queue, dry_run, report).await;
        }
        bail!("{} drains into no queue: nothing to send back", queue.name)
    };
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let target = sqs.clone();
    // What is there now, and no more.
    let limit = depth(&sqs, &queue.url).await? as usize;
    drain(&sqs, &queue.url, !dry_run, limit, |dead, message| {
        report(&dead);
        let (target, source) = (target.clone(), source.clone());
        async move {
            if !dry_run {
                target
                    .send_message()
                    .queue_url(source)
                    .message_body(message.body.unwrap_or_default())
                    .set_message_attributes(message.message_attributes)
                    .send()
                    .await?;
            }
            Ok(())
        }
    })
    .await
}

/// Publishes again what the publisher's dead-letter queue holds: each message's status events,
/// from the task record as it is now, with the publisher's event ids. A message is deleted only
/// when all of its events were published; one that cannot be (a task record still unreadable, a
/// batch the stream no longer retains, …) stays, made visible again, and is reported with its
/// named error (`Dead::error`). Returns how many messages were published (with `dry_run`: how
/// many were looked at; nothing is published or deleted).
pub async fn redrive_publisher(stack: &StackInfo, queue: &DeadLetters, dry_run: bool, mut report: impl FnMut(&Dead)) -> Result<usize> {
    let config = stack.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let items = TaskTable { client: aws_sdk_dynamodb::Client::new(&config), table: stack.output("TaskTableName")?.to_string() };
    let stream = StreamReader { client: aws_sdk_dynamodbstreams::Client::new(&config), region: stack.region.clone() };
    let bus = taskflow_publisher::bus::EventBridgeBus::new(&config, stack.output("EventBusName")?);
    let limit = depth(&sqs, &queue.url).await? as usize;
    let (mut seen, mut published) = (HashSet::new(), 0);
    while seen.len() < limit {
        let out = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages((limit - seen.len()).clamp(1, 10) as i32)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?;
        let fresh: Vec<_> = out.messages.unwrap_or_default().into_iter().filter(|m| seen.insert(m.message_id.clone().unwrap_or_default())).collect();
        if fresh.is_empty() {
            break;
        }
        for m in fresh {
            let receipt = m.receipt_handle.clone().unwrap_or_default();
            let mut dead = Dead::of(&m);
            // A dry run reads everything a redrive reads (the task record too, so a record still
            // unreadable is reported as the redrive would report it) and publishes nothing.
            let outcome = if dry_run {
                taskflow_publisher::redrive::redrive(&dead.body, &items, &stream, &NoBus).await
            } else {
                taskflow_publisher::redrive::redrive(&dead.body, &items, &stream, &bus).await
            };
            match outcome {
                Ok(_) if !dry_run => {
                    sqs.delete_message().queue_url(&queue.url).receipt_handle(&receipt).send().await?;
                    published += 1;
                }
                other => {
                    dead.error = other.err().map(|e| e.to_string());
                    if dry_run && dead.error.is_none() {
                        published += 1;
                    }
                    sqs.change_message_visibility().queue_url(&queue.url).receipt_handle(&receipt).visibility_timeout(0).send().await?;
                }
            }
            report(&dead);
        }
    }
    Ok(published)
}

/// What a dry run publishes to: nothing (every event is taken and dropped).
struct NoBus;

#[async_trait]
impl taskflow_publisher::bus::EventBus for NoBus {
    async fn publish(&self, _events: &[taskflow_contracts::TaskStatusChanged]) -> Result<(), taskflow_publisher::bus::PublishError> {
        Ok(())
    }
}

/// The task table, read by primary key with strongly consistent reads.
struct TaskTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[async_trait]
impl TaskItems for TaskTable {
    async fn item(&self, key: &serde_dynamo::Item) -> Result<Option<serde_dynamo::Item>, RedriveError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.clone().into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RedriveError::Table(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()))?;
        Ok(out.item.map(serde_dynamo::Item::from))
    }
}

/// A stream shard read back with `GetShardIterator(AT_SEQUENCE_NUMBER)` and `GetRecords`.
struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    region: String,
}

/// Whether stream sequence number `a` comes after `b` (both decimal strings of any length).
pub fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

#[async_trait]
impl StreamRecords for StreamReader {
    async fn between(&self, batch: &StreamBatchInfo) -> Result<Vec<EventRecord>, RedriveError> {
        use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator,
            // Older than the stream's 24 hours, or the stream/shard is gone.
            Err(e) if matches!(e.as_service_error(), Some(GetShardIteratorError::TrimmedDataAccessException(_) | GetShardIteratorError::ResourceNotFoundException(_))) => {
                return Err(RedriveError::StreamRecordsGone(aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string()));
            }
            Err(e) => return Err(RedriveError::Stream(aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())),
        };
        let mut records = Vec::new();
        let mut empty_pages = 0;
        while let Some(current) = iterator.take() {
            let out = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit(1000)
                .send()
                .await
                .map_err(|e| RedriveError::Stream(aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string()))?;
            let page = out.records.unwrap_or_default();
            if page.is_empty() {
                // Caught up with an open shard (or a sparse page): a few tries, then stop.
                empty_pages += 1;
                if empty_pages >= 3 {
                    break;
                }
            }
            for record in page {
                let sequence = record.dynamodb.as_ref().and_then(|d| d.sequence_number.clone()).unwrap_or_default();
                if sequence_after(&sequence, &batch.end_sequence_number) {
                    return Ok(records);
                }
                let json = crate::sources::stream_record(&record, &batch.stream_arn, &self.region);
                records.push(serde_json::from_value(json).map_err(|e| RedriveError::Stream(format!("record {sequence}: {e}")))?);
            }
            iterator = out.next_shard_iterator;
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("1100000000017454423010", "1100000000017454423009"));
        assert!(sequence_after("100000000000000000001", "99999999999999999999"));
        assert!(!sequence_after("99999999999999999999", "100000000000000000001"));
        assert!(!sequence_after("5", "5"));
    }
}
