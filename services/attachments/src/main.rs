//! The attachments Lambda: S3 event notifications (via the attachments queue) → each uploaded
//! attachment checked, then recorded on its task or deleted (see the library docs).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::sqs::BatchItemFailure;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use taskflow_attachments::{objects_in, s3::Bucket, Checked, Checker, Limits};
use taskflow_contracts::attachment;
use taskflow_shared::{clients, config, metrics, tasks::DynamoTaskStore, telemetry};
use tracing::{error, info, warn, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("attachments"));
    let aws = clients::shared().await;
    let bucket = config::required("TASK_BUCKET")?;
    let checker = Arc::new(Checker {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        objects: Bucket::new(&aws, bucket.clone()),
        limits: Limits {
            max_bytes: config::number_or("ATTACHMENT_MAX_BYTES", attachment::DEFAULT_MAX_BYTES)?,
            max_per_task: config::number_or("MAX_ATTACHMENTS_PER_TASK", attachment::DEFAULT_MAX_PER_TASK)?,
        },
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (checker, telemetry, bucket) = (checker.clone(), telemetry.clone(), bucket.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            let mut response = SqsBatchResponse::default();
            for message in event.payload.records {
                let body = message.body.as_deref().unwrap_or_default();
                let span = telemetry::continue_trace("attachments", message.attributes.get(telemetry::TRACE_HEADER).map(String::as_str));
                let failed = async {
                    let objects = match objects_in(body) {
                        Ok(objects) => objects,
                        Err(e) => {
                            // Not an S3 event: left on the queue until it reaches the DLQ.
                            error!(error = e.as_str(), "message not handled");
                            return true;
                        }
                    };
                    for (from, key, at) in objects {
                        if from != bucket {
                            warn!(bucket = from.as_str(), key = key.as_str(), "an event of another bucket: ignored");
                            continue;
                        }
                        match checker.check(&key, at).await {
                            Ok(Checked::Recorded(a)) => info!(key = key.as_str(), attachment_id = a.id.as_str(), size = a.size, content_type = a.content_type.as_str(), "attachment recorded"),
                            Ok(Checked::AlreadyRecorded) => info!(key = key.as_str(), "attachment already recorded (duplicate event)"),
                            Ok(Checked::Gone) => info!(key = key.as_str(), "no such object any more (duplicate event)"),
                            Ok(Checked::Refused(reason, detail)) => {
                                warn!(key = key.as_str(), reason = reason.as_str(), detail = detail.as_str(), "attachment refused and deleted");
                                metrics::count("AttachmentsRefused", &[("Reason", reason.as_str())]);
                            }
                            Err(e) => {
                                error!(key = key.as_str(), error = %e, "attachment not checked; retried");
                                return true;
                            }
                        }
                    }
                    false
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
