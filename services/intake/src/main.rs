//! The intake Lambda: SQS (fed by the OrderSubmitted rule) → task + execution.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::sqs::BatchItemFailure;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use taskflow_intake::{workflows::StepFunctionsWorkflows, Intake};
use taskflow_shared::{clients, config, tasks::DynamoTaskStore, telemetry};
use tracing::{error, info};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = clients::load().await;
    let intake = Arc::new(Intake {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        workflows: StepFunctionsWorkflows::new(&aws, config::required("ORDER_WORKFLOW_ARN")?),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let intake = intake.clone();
        async move {
            let mut response = SqsBatchResponse::default();
            for message in event.payload.records {
                let body = message.body.as_deref().unwrap_or_default();
                match intake.accept(body, chrono::Utc::now()).await {
                    Ok(accepted) => info!(outcome = ?accepted, "order event handled"),
                    Err(e) => {
                        // Left on the queue: redelivered if transient, dead-lettered if not.
                        error!(error = %e, message_id = message.message_id.as_deref().unwrap_or_default(), "order event not handled");
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = message.message_id.clone().unwrap_or_default();
                        response.batch_item_failures.push(failure);
                    }
                }
            }
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}
