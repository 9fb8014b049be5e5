//! The intake Lambda: SQS (fed by the OrderSubmitted rule) → task + execution.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::sqs::BatchItemFailure;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use taskflow_intake::{workflows::StepFunctionsWorkflows, Intake, IntakeError};
use taskflow_shared::driver::{Redelivery, RetryPolicy, SqsRedelivery};
use taskflow_shared::{catalogue::DynamoCatalogue, clients, config, executions::StepFunctionsExecutions, tasks::DynamoTaskStore, telemetry};
use tracing::{error, info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("intake"));
    let aws = clients::shared().await;
    let intake = Arc::new(Intake {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        workflows: StepFunctionsWorkflows::new(&aws, config::required("PURCHASE_WORKFLOW_ARN")?, config::required("REFUND_WORKFLOW_ARN")?),
        catalogue: DynamoCatalogue::new(&aws, config::required("CATALOGUE_TABLE")?),
    });
    // Cancellations (OrderCancelled) arrive on the same queue.
    let executions = Arc::new(StepFunctionsExecutions::new(&aws));
    let purchase_workflow: Arc<str> = config::required("PURCHASE_WORKFLOW_ARN")?.into();
    let redelivery = Arc::new(SqsRedelivery::new(&aws, config::required("INTAKE_QUEUE_URL")?));
    let policy = RetryPolicy::from_env()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (intake, redelivery, telemetry) = (intake.clone(), redelivery.clone(), telemetry.clone());
        let (executions, purchase_workflow) = (executions.clone(), purchase_workflow.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            let mut response = SqsBatchResponse::default();
            for message in event.payload.records {
                let body = message.body.as_deref().unwrap_or_default();
                // EventBridge passes the producer's trace (PutEvents `TraceHeader`) on as the
                // message's AWSTraceHeader; without one, the order's trace starts here.
                let header = message.attributes.get(telemetry::TRACE_HEADER).map(String::as_str);
                let span = telemetry::continue_trace("intake", header);
                if let Some(order_id) = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|e| e["detail"]["orderId"].as_str().map(str::to_string)) {
                    span.record("order_id", order_id.as_str());
                }
                let failed = async {
                    let handled = if taskflow_intake::cancellation::is_cancel(body) {
                        taskflow_intake::cancellation::handle(&intake.tasks, &*executions, &purchase_workflow, body, chrono::Utc::now())
                            .await
                            .map(|outcome| format!("{outcome:?}"))
                    } else {
                        intake.accept(body, chrono::Utc::now()).await.map(|accepted| format!("{accepted:?}"))
                    };
                    match handled {
                        Ok(outcome) => {
                            info!(outcome = outcome.as_str(), "order event handled");
                            false
                        }
                        Err(e) => {
                            // Left on the queue: redelivered after a backoff if transient; at once
                            // if there is no order in it, so it reaches the dead-letter queue quickly.
                            error!(error = %e, message_id = message.message_id.as_deref().unwrap_or_default(), "order event not handled");
                            let attempt = message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
                            let seconds = match e {
                                IntakeError::NotAnOrder(_) => 0,
                                _ => policy.delay_after(attempt),
                            };
                            if let Some(receipt) = message.receipt_handle.as_deref() {
                                if let Err(e) = redelivery.delay(receipt, seconds).await {
                                    error!(error = %e, "could not set the redelivery delay");
                                }
                            }
                            true
                        }
                    }
                }
                .instrument(span)
                .await;
                if failed {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            telemetry.flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
        .instrument(invocation)
    }))
    .await
}
