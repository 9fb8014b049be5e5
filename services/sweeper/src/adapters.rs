//! The sweeper's adapters: the in-flight index (DynamoDB Query), the refund service's path, the
//! bus.

use crate::{InFlight, Repair, Reports};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskflow_contracts::{OrderSubmitted, StepFailure, TaskSwept, SCHEMA_VERSION};
use taskflow_refund::Refunds;
use taskflow_shared::inventory::Inventory;
use taskflow_shared::ledger::Ledger;
use taskflow_shared::payments::PaymentProvider;
use taskflow_shared::tasks::{inflight_page, StoreError, TaskRecord, TaskStore, INFLIGHT_SHARDS};

/// The task table's `inflight` index: a Query per shard, `inflightSince < cutoff`.
pub struct DynamoInFlight {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoInFlight {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into() }
    }
}

#[async_trait]
impl InFlight for DynamoInFlight {
    async fn since_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks = Vec::new();
        for shard in 0..INFLIGHT_SHARDS {
            let mut start = None;
            loop {
                let (ids, next) = inflight_page(&self.client, &self.table, shard, Some(cutoff), start).await?;
                // The index projects keys only (`tasks::TASK_INDEX_PROJECTION`): the tasks are
                // read by key, and one that left flight meanwhile is not the sweeper's.
                let items = taskflow_shared::dynamo::batch_get(&self.client, &self.table, "taskId", &ids).await.map_err(StoreError::Unavailable)?;
                for item in items {
                    let id = item.get("taskId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    match serde_dynamo::from_item::<_, TaskRecord>(item) {
                        Ok(task) if task.inflight_since.is_none() => {}
                        Ok(task) => tasks.push(task),
                        // A record this version cannot read (a status added later, say) is not
                        // the sweeper's to judge.
                        Err(e) => tracing::warn!(task_id = id.as_str(), error = %e, "in-flight task not readable; left alone"),
                    }
                    if tasks.len() >= limit {
                        return Ok(tasks);
                    }
                }
                start = next;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(tasks)
    }
}

/// The refund service's idempotent path, run in the sweeper.
pub struct RefundRepair<S, P, L, I>(pub Refunds<S, P, L, I>);

/// The order a task was accepted as (what its workflow's input carried).
pub fn order_of(task: &TaskRecord) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: SCHEMA_VERSION,
        order_id: task.order_id.clone(),
        owner: task.owner.clone(),
        kind: task.kind.unwrap_or(taskflow_contracts::OrderKind::Purchase),
        items: task.items.clone(),
        currency: task.currency.clone(),
        payment_token: None,
        refund_of: task.refund_of.clone(),
        amount: (task.amount > 0).then_some(task.amount),
        attachments: task.refund_attachments.clone(),
    }
}

#[async_trait]
impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> Repair for RefundRepair<S, P, L, I> {
    async fn finish(&self, task: &TaskRecord) -> Result<(), String> {
        // A task not yet fenced is compensated as a step that timed out would be (TIMED_OUT).
        let failure = StepFailure { error: "States.Timeout".into(), cause: Some("in flight longer than its workflow allows (sweeper)".into()) };
        self.0.finish(&order_of(task), Some(&failure)).await.map(|_| ()).map_err(|e| match e {
            taskflow_shared::driver::StepError::Failed { error, cause } | taskflow_shared::driver::StepError::Retry { error, cause, .. } => format!("{error}: {cause}"),
        })
    }
}

/// `TaskSwept` events on the task bus (source `taskflow.sweeper`), ten entries a call.
pub struct EventBridgeReports {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeReports {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bus: impl Into<String>) -> Self {
        Self { client: aws_sdk_eventbridge::Client::new(aws.sdk_config()), bus: bus.into() }
    }
}

#[async_trait]
impl Reports for EventBridgeReports {
    async fn publish(&self, swept: &[TaskSwept]) -> Result<(), String> {
        // PutEvents takes at most 10 entries a call (EventBridge API reference, PutEvents).
        for chunk in swept.chunks(10) {
            let entries = chunk
                .iter()
                .map(|s| {
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(taskflow_contracts::sweep::SWEEPER_SOURCE)
                        .detail_type(taskflow_contracts::sweep::TASK_SWEPT)
                        .detail(serde_json::to_string(s).expect("events serialise"))
                        .build()
                })
                .collect::<Vec<_>>();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string())?;
            if out.failed_entry_count > 0 {
                return Err(format!("{} TaskSwept events refused", out.failed_entry_count));
            }
        }
        Ok(())
    }
}
