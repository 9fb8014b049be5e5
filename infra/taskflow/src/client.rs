//! What an outside client does with a stack: submit orders to the bus, read tasks, and follow
//! status events through a subscription of its own (a rule and a queue it creates and removes).

use crate::stack::StackInfo;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::time::Duration;
use taskflow_contracts::{
    EventEnvelope, OrderSubmitted, TaskStatusChanged, ORDER_SOURCE, ORDER_SUBMITTED, TASK_SOURCE, TASK_STATUS_CHANGED,
};
use taskflow_shared::tasks::{DynamoTaskStore, TaskRecord, TaskStore};

pub struct Client {
    pub aws: aws_config::SdkConfig,
    events: aws_sdk_eventbridge::Client,
    tasks: DynamoTaskStore,
    bus: String,
    bucket: String,
    workflows: taskflow_shared::executions::WorkflowArns,
}

impl Client {
    pub async fn connect(stack: &StackInfo) -> Result<Client> {
        let aws = stack.sdk_config().await;
        Ok(Client {
            events: aws_sdk_eventbridge::Client::new(&aws),
            tasks: DynamoTaskStore::new(&aws, stack.output("TaskTableName")?),
            bus: stack.output("EventBusName")?.to_string(),
            bucket: stack.output("TaskBucketName")?.to_string(),
            workflows: stack.workflows()?,
            aws,
        })
    }

    /// Publishes an `OrderSubmitted` event, as any producer would.
    pub async fn submit(&self, order: &OrderSubmitted) -> Result<()> {
        self.submit_detail(&serde_json::to_string(order)?).await
    }

    /// Publishes a raw `OrderSubmitted` detail (for orders the types would not even let us build).
    pub async fn submit_detail(&self, detail: &str) -> Result<()> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(ORDER_SOURCE)
            .detail_type(ORDER_SUBMITTED)
            .detail(detail)
            .build();
        let out = self.events.put_events().entries(entry).send().await.context("publishing the order")?;
        if out.failed_entry_count > 0 {
            bail!("the bus refused the order: {:?}", out.entries);
        }
        Ok(())
    }

    /// The task `id` names: with `owner`, that owner's order `id` (a direct read of its task id);
    /// without, `id` may be a task id (`t-…`, `c-…`, `r-…`) or an order id, which is looked up
    /// across owners (a Scan: an operator's tool) and must then be used by one owner only. Its
    /// `execution_arn` is filled in, derived from the stack's workflows (the task does not note it).
    pub async fn find(&self, owner: Option<&str>, id: &str) -> Result<Option<TaskRecord>> {
        Ok(self.find_stored(owner, id).await?.map(|mut task| {
            task.execution_arn = self.workflows.execution_of(&task);
            task
        }))
    }

    async fn find_stored(&self, owner: Option<&str>, id: &str) -> Result<Option<TaskRecord>> {
        if let Some(owner) = owner {
            return Ok(self.tasks.get(&taskflow_contracts::keys::task_id(owner, id)).await?);
        }
        if taskflow_contracts::keys::is_derived_id(id) {
            return Ok(self.tasks.get(id).await?);
        }
        let mut found = self.tasks.find_by_order_id(id).await?;
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => {
                let owners: Vec<String> = found.iter().map(|t| format!("{} ({})", t.owner, t.task_id)).collect();
                bail!("order id {id} is used by {n} tasks: {}; name one with --owner or its task id", owners.join(", "))
            }
        }
    }

    /// `owner`'s task of order `order_id`, waiting up to `wait` for it to be recorded: an order is
    /// accepted asynchronously (the bus, then intake records its task), so one submitted a moment
    /// ago may have no task yet. `None` if there is still none after `wait`; errors are the
    /// task store's.
    pub async fn find_recorded(&self, owner: &str, order_id: &str, wait: Duration) -> Result<Option<TaskRecord>> {
        until_found(wait, Duration::from_millis(250), || self.find(Some(owner), order_id)).await
    }

    /// [`Client::find`] without an owner: a task id, or an order id only one owner used.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        self.find(None, id).await
    }

    /// An owner's tasks, newest first.
    pub async fn tasks_of(&self, owner: &str) -> Result<Vec<TaskRecord>> {
        Ok(self.tasks.list_by_owner(owner).await?)
    }

    /// The latest receipt of a task: its key and content.
    pub async fn receipt(&self, owner: Option<&str>, order_id: &str) -> Result<(String, Vec<u8>)> {
        let task = self.find(owner, order_id).await?.with_context(|| format!("no task for order {order_id}"))?;
        let key = task.receipts.last().with_context(|| format!("order {order_id} has no receipt yet ({})", task.status))?.clone();
        let object = aws_sdk_s3::Client::new(&self.aws).get_object().bucket(&self.bucket).key(&key).send().await?;
        let body = object.body.collect().await?.into_bytes().to_vec();
        Ok((key, body))
    }

    /// A closed task's audit log (`taskflow_shared::tasklog`): its key and its JSON Lines.
    pub async fn task_log(&self, owner: Option<&str>, order_id: &str) -> Result<(String, String)> {
        use taskflow_shared::tasklog::{self, TaskLogs};
        let task = self.find(owner, order_id).await?.with_context(|| format!("no task for order {order_id}"))?;
        let key = tasklog::key(&task).map_err(|e| anyhow::anyhow!("order {order_id}: {e}"))?;
        let text = tasklog::S3TaskLogs::new(&self.aws, &self.bucket)
            .read(&key)
            .await?
            .with_context(|| format!("order {order_id} is {} and has no log yet (a log is written once the task is closed)", task.status))?;
        Ok((key, text))
    }

    /// Waits until the task has a terminal status (or `timeout` passes); returns it as it is.
    pub async fn wait_terminal(&self, order_id: &str, timeout: Duration) -> Result<Option<TaskRecord>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let task = self.task(order_id).await?;
            if task.as_ref().is_some_and(|t| t.status.is_terminal()) || tokio::time::Instant::now() >= deadline {
                return Ok(task);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A subscription to `TaskStatusChanged`: its own rule on the bus, targeting its own queue.
pub struct StatusFeed {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    bus: String,
    name: String,
    queue_url: String,
}

impl StatusFeed {
    pub async fn open(stack: &StackInfo) -> Result<StatusFeed> {
        let aws = stack.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let events = aws_sdk_eventbridge::Client::new(&aws);
        let bus = stack.output("EventBusName")?.to_string();
        let name = format!("taskflow-watch-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let queue_url = sqs.create_queue().queue_name(&name).send().await?.queue_url.context("queue without URL")?;
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?;
        let queue_arn = attrs
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .context("queue without ARN")?;
        let pattern = serde_json::json!({ "source": [TASK_SOURCE], "detail-type": [TASK_STATUS_CHANGED] });
        let rule_arn = events
            .put_rule()
            .name(&name)
            .event_bus_name(&bus)
            .event_pattern(pattern.to_string())
            .send()
            .await?
            .rule_arn
            .unwrap_or_default();
        // On AWS the bus may only deliver to a queue whose policy lets it.
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Principal": { "Service": "events.amazonaws.com" },
                "Action": "sqs:SendMessage", "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": rule_arn } } }]
        });
        sqs.set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy.to_string())
            .send()
            .await?;
        let target = aws_sdk_eventbridge::types::Target::builder().id("feed").arn(queue_arn).build()?;
        events.put_targets().rule(&name).event_bus_name(&bus).targets(target).send().await?;
        Ok(StatusFeed { sqs, events, bus, name, queue_url })
    }

    /// The status events that arrive within `wait` (at most one long poll).
    pub async fn next(&self, wait: Duration) -> Result<Vec<TaskStatusChanged>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait.as_secs().clamp(0, 20) as i32)
            .send()
            .await?;
        let mut events = Vec::new();
        for message in out.messages.unwrap_or_default() {
            if let Some(body) = &message.body {
                match serde_json::from_str::<EventEnvelope<TaskStatusChanged>>(body) {
                    Ok(event) => events.push(event.detail),
                    Err(e) => eprintln!("unreadable status event ({e}): {body}"),
                }
            }
            if let Some(handle) = &message.receipt_handle {
                self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await?;
            }
        }
        Ok(events)
    }

    /// Collects events until every order in `orders` has a terminal status event, or `timeout`.
    /// Duplicates (same event id) are dropped, as the contract tells consumers to.
    pub async fn collect_until_terminal(&self, orders: &[String], timeout: Duration) -> Result<HashMap<String, Vec<TaskStatusChanged>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen: HashMap<String, Vec<TaskStatusChanged>> = orders.iter().map(|o| (o.clone(), Vec::new())).collect();
        let done = |seen: &HashMap<String, Vec<TaskStatusChanged>>| {
            seen.values().all(|events| events.iter().any(|e| e.status.is_terminal()))
        };
        while !done(&seen) && tokio::time::Instant::now() < deadline {
            for event in self.next(Duration::from_secs(1)).await? {
                if let Some(events) = seen.get_mut(&event.order_id) {
                    if !events.iter().any(|e| e.event_id == event.event_id) {
                        events.push(event);
                    }
                }
            }
        }
        for events in seen.values_mut() {
            events.sort_by_key(|e| e.sequence);
        }
        Ok(seen)
    }

    /// Removes the rule and the queue.
    pub async fn close(self) {
        let _ = self.events.remove_targets().rule(&self.name).event_bus_name(&self.bus).ids("feed").send().await;
        let _ = self.events.delete_rule().name(&self.name).event_bus_name(&self.bus).send().await;
        let _ = self.sqs.delete_queue().queue_url(&self.queue_url).send().await;
    }
}

/// Calls `find` until it finds something, every `every`, for up to `wait` (at least once): the
/// first `Some`, or `None` once `wait` has passed. The first error ends it.
pub async fn until_found<T, F, Fut>(wait: Duration, every: Duration, mut find: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(found) = find().await? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// A task's amount as the CLI prints it, `"{amount} {currency}"` in minor units — or `None` when
/// the task has no currency: an order REJECTED at intake was never priced, so its amount (0)
/// says nothing, and it has no currency to print.
pub fn amount_text(amount: taskflow_contracts::Money, currency: &str) -> Option<String> {
    (!currency.is_empty()).then(|| format!("{amount} {currency}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_task_recorded_a_moment_later_is_found() {
        let calls = AtomicU32::new(0);
        let found = until_found(Duration::from_secs(5), Duration::from_millis(5), || async {
            // Recorded on the third look, as an order intake has not taken yet.
            Ok((calls.fetch_add(1, Ordering::SeqCst) >= 2).then_some("task"))
        })
        .await
        .unwrap();
        assert_eq!((found, calls.load(Ordering::SeqCst)), (Some("task"), 3));
    }

    #[tokio::test]
    async fn a_task_never_recorded_is_none_once_the_wait_has_passed() {
        let started = std::time::Instant::now();
        let found: Option<()> = until_found(Duration::from_millis(60), Duration::from_millis(5), || async { Ok(None) }).await.unwrap();
        assert_eq!(found, None);
        assert!(started.elapsed() >= Duration::from_millis(60));
        let err = until_found::<(), _, _>(Duration::from_secs(5), Duration::from_millis(5), || async { bail!("store down") }).await.unwrap_err();
        assert_eq!(err.to_string(), "store down", "an error is not waited out");
    }

    #[test]
    fn an_unpriced_task_prints_no_amount_and_no_empty_currency() {
        assert_eq!(amount_text(1250, "EUR").as_deref(), Some("1250 EUR"));
        assert_eq!(amount_text(0, "EUR").as_deref(), Some("0 EUR"));
        assert_eq!(amount_text(0, ""), None, "a task rejected at intake has no currency");
    }
}
