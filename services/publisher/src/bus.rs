//! Announcing status events: the port and its EventBridge adapter.

use async_trait::async_trait;
use taskflow_contracts::{TaskAttachmentAdded, TaskStatusChanged, TASK_ATTACHMENT_ADDED, TASK_SOURCE, TASK_STATUS_CHANGED};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("{0}")]
pub struct PublishError(pub String);

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[TaskStatusChanged]) -> Result<(), PublishError>;
    /// Announces `TaskAttachmentAdded` events (detail type [`TASK_ATTACHMENT_ADDED`], source
    /// `taskflow.tasks`). Buses that never relay attachments (dry runs) keep the default, which
    /// refuses by name rather than drop them.
    async fn publish_attachments(&self, events: &[TaskAttachmentAdded]) -> Result<(), PublishError> {
        Err(PublishError(format!("this bus does not announce {TASK_ATTACHMENT_ADDED} ({} events)", events.len())))
    }
}

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bus_name: impl Into<String>) -> Self {
        Self { client: aws_sdk_eventbridge::Client::new(aws.sdk_config()), bus_name: bus_name.into() }
    }
}

/// PutEvents takes at most 10 entries a call.
const MAX_ENTRIES: usize = 10;

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[TaskStatusChanged]) -> Result<(), PublishError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk.iter().map(|event| {
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(TASK_SOURCE)
                    .detail_type(TASK_STATUS_CHANGED)
                    .detail(serde_json::to_string(event).expect("events always serialise"))
                    // Subscribers' targets (SQS, Lambda, …) continue the order's trace.
                    .set_trace_header(taskflow_shared::telemetry::current_header())
                    .build()
            });
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string()))?;
            // Partial failures are all-or-nothing here: the whole batch is retried and the
            // deterministic event ids let consumers drop what they already saw.
            if out.failed_entry_count > 0 {
                return Err(PublishError(format!("{} of {} entries failed", out.failed_entry_count, chunk.len())));
            }
        }
        Ok(())
    }

    async fn publish_attachments(&self, events: &[TaskAttachmentAdded]) -> Result<(), PublishError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk.iter().map(|event| {
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(TASK_SOURCE)
                    .detail_type(TASK_ATTACHMENT_ADDED)
                    .detail(serde_json::to_string(event).expect("events always serialise"))
                    .set_trace_header(taskflow_shared::telemetry::current_header())
                    .build()
            });
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string()))?;
            if out.failed_entry_count > 0 {
                return Err(PublishError(format!("{} of {} entries failed", out.failed_entry_count, chunk.len())));
            }
        }
        Ok(())
    }
}
