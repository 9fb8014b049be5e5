//! The approvals Lambda: the approvals queue's messages (from the refund workflow's approval
//! steps) → pending approvals kept with their task tokens, reminders, expiries.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::sqs::BatchItemFailure;
use std::sync::Arc;
use taskflow_approvals::{Approvals, EventBridgeReminders};
use taskflow_contracts::ApprovalWork;
use taskflow_shared::approvals::DynamoApprovalStore;
use taskflow_shared::callback::StepFunctionsCallback;
use taskflow_shared::driver::{Redelivery, RetryPolicy, SqsRedelivery, StepError};
use taskflow_shared::{clients, config, tasks::DynamoTaskStore, telemetry};
use tracing::{error, info, warn, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("approvals"));
    let aws = clients::shared().await;
    let approvals = Arc::new(Approvals {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        approvals: DynamoApprovalStore::new(&aws, config::required("APPROVAL_TABLE")?),
        callback: StepFunctionsCallback::new(&aws),
        reminders: EventBridgeReminders::new(&aws, config::required("EVENT_BUS_NAME")?),
        reminder_after: chrono::Duration::seconds(config::number_or("APPROVAL_REMINDER_SECONDS", 172_800)?),
        final_after: chrono::Duration::seconds(config::number_or("APPROVAL_FINAL_SECONDS", 86_400)?),
    });
    // As every worker does (services/shared/src/driver.rs): a transient failure comes back after
    // a backoff with jitter, a poison message reaches the dead-letter queue without waiting.
    let redelivery = Arc::new(SqsRedelivery::new(&aws, config::required("WORK_QUEUE_URL")?));
    let policy = RetryPolicy::from_env()?;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (approvals, telemetry, redelivery) = (approvals.clone(), telemetry.clone(), redelivery.clone());
        async move {
            let mut response = SqsBatchResponse::default();
            for message in &event.payload.records {
                let body = message.body.as_deref().unwrap_or_default();
                let work: Result<ApprovalWork, _> = serde_json::from_str(body);
                let header = message
                    .attributes
                    .get(telemetry::TRACE_HEADER)
                    .cloned()
                    .or_else(|| work.as_ref().ok().and_then(|w| w.trace_header.clone()));
                let attempt: u32 = message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
                let again = async {
                    let work = match work {
                        Ok(work) => work,
                        Err(e) => {
                            // No readable token to answer: it goes to the dead-letter queue.
                            error!(error = "PoisonMessage", detail = %e, "unreadable approval message; it will go to the dead-letter queue");
                            if let Some(receipt) = message.receipt_handle.as_deref() {
                                let _ = redelivery.delay(receipt, 0).await;
                            }
                            return true;
                        }
                    };
                    tracing::Span::current().record("order_id", work.order.order_id.as_str());
                    match approvals.handle(&work, chrono::Utc::now()).await {
                        Ok(()) => {
                            info!(order_id = work.order.order_id.as_str(), purpose = ?work.purpose, "approval step recorded");
                            false
                        }
                        Err(StepError::Failed { error, cause }) => {
                            info!(order_id = work.order.order_id.as_str(), error, cause, "approval step answered as failed");
                            false
                        }
                        Err(StepError::Retry { error, cause, after }) => {
                            warn!(order_id = work.order.order_id.as_str(), error, cause, attempt, "transient failure; will retry");
                            if let Some(receipt) = message.receipt_handle.as_deref() {
                                let seconds = policy.delay_after(attempt).max(after.unwrap_or(0)).min(43_200);
                                if let Err(e) = redelivery.delay(receipt, seconds).await {
                                    warn!(error = %e, "could not shorten the redelivery delay");
                                }
                            }
                            true
                        }
                    }
                }
                .instrument(telemetry::continue_trace("approvals", header.as_deref()))
                .await;
                if again {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            telemetry.flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
        .instrument(telemetry::invocation(&event.context))
    }))
    .await
}
