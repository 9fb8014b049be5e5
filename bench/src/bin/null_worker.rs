//! The null worker of `make bench`: stands in for purchase, refund and notification and answers
//! every task token at once, with no work done. The stack's throughput with it is the ceiling the
//! emulator and the workflow's plumbing set; ours is measured next to it.
//!
//! It keeps the delivery contract our workers keep, or a single failed answer would poison the
//! stand-in's batches (a whole batch redelivered, its answered tokens then refused, until the
//! dead-letter queue): a token Step Functions says is spent (`TaskTimedOut`, `TaskDoesNotExist`,
//! `InvalidToken`, as `services/shared/src/callback.rs` reads them) is done, any other failure
//! is that message's alone (a partial batch failure: it comes back, the others do not).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sfn::error::ProvideErrorMetadata;
use lambda_runtime::{service_fn, Error, LambdaEvent};

const SPENT_TOKEN_ERRORS: [&str; 3] = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"];

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let sfn = sfn.clone();
        async move {
            let mut response = SqsBatchResponse::default();
            for record in event.payload.records {
                let body: serde_json::Value = serde_json::from_str(record.body.as_deref().unwrap_or_default()).unwrap_or_default();
                let Some(token) = body["taskToken"].as_str() else {
                    // Not a task: nothing to answer, and nothing a retry would change.
                    eprintln!("null worker: message {} has no task token", record.message_id.as_deref().unwrap_or_default());
                    continue;
                };
                if let Err(e) = sfn.send_task_success().task_token(token).output("{}").send().await {
                    let code = e.as_service_error().and_then(|e| e.code());
                    let spent = code.is_some_and(|code| SPENT_TOKEN_ERRORS.contains(&code));
                    eprintln!("null worker: SendTaskSuccess for {token}: {} ({})", code.unwrap_or("no code"), if spent { "spent, done" } else { "retried" });
                    if !spent {
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = record.message_id.clone().unwrap_or_default();
                        response.batch_item_failures.push(failure);
                    }
                }
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}
