//! The publisher Lambda: task table stream → `TaskStatusChanged` events on the bus.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use taskflow_publisher::{bus::EventBridgeBus, dead::SqsDeadLetters, Publisher, StreamBatchResponse};
use taskflow_shared::tasklog::S3TaskLogs;
use taskflow_shared::{clients, config, telemetry};
use tracing::{info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("publisher"));
    let aws = clients::shared().await;
    let publisher = Arc::new(Publisher {
        bus: EventBridgeBus::new(&aws, config::required("EVENT_BUS_NAME")?),
        dead_letters: SqsDeadLetters::new(&aws, config::required("PUBLISHER_DLQ_URL")?),
        logs: S3TaskLogs::new(&aws, config::required("TASK_BUCKET")?),
        workflows: Some(taskflow_shared::executions::WorkflowArns {
            purchase: config::required("PURCHASE_WORKFLOW_ARN")?,
            refund: config::required("REFUND_WORKFLOW_ARN")?,
        }),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let (publisher, telemetry) = (publisher.clone(), telemetry.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            // A partial batch response (ReportBatchItemFailures): Lambda retries from the first
            // record that failed for a reason that may pass; unreadable records were set aside.
            // An error (a failed record with no sequence number) fails the whole batch.
            let relayed = publisher.relay(&event.payload).await;
            telemetry.flush();
            let relayed = relayed?;
            info!(
                records = event.payload.records.len(),
                published = relayed.published,
                set_aside = relayed.set_aside,
                retry_from = relayed.response.batch_item_failures.first().map(|f| f.item_identifier.as_str()),
                "status events published"
            );
            Ok::<StreamBatchResponse, lambda_runtime::Error>(relayed.response)
        }
        .instrument(invocation)
    }))
    .await
}
