//! Dead-letter queues: what is in them, and sending it back to be processed again.

use crate::stack::StackInfo;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;

/// One dead-letter queue of the stack and the queue it drains (none for the publisher's, which
/// holds descriptions of stream batches rather than messages).
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
            let dead = Dead {
                message_id: m.message_id.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount).cloned())
                    .unwrap_or_default(),
            };
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

/// Moves a dead-letter queue's messages back to the queue they came from.
pub async fn redrive(stack: &StackInfo, name: &str, dry_run: bool, mut report: impl FnMut(&Dead)) -> Result<usize> {
    let queue = find(stack, name)?;
    let Some(source) = queue.source_url.clone() else {
        bail!("{} holds descriptions of failed stream batches, not messages: nothing to send back", queue.name)
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
