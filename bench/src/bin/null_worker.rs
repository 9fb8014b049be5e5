//! The null worker of `make bench`: stands in for purchase, refund and notification and answers
//! every task token at once, with no work done. The stack's throughput with it is the ceiling the
//! emulator and the workflow's plumbing set; ours is measured next to it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let sfn = sfn.clone();
        async move {
            for record in event.payload.records {
                let body: serde_json::Value = serde_json::from_str(record.body.as_deref().unwrap_or_default())?;
                if let Some(token) = body["taskToken"].as_str() {
                    sfn.send_task_success().task_token(token).output("{}").send().await?;
                }
            }
            Ok::<_, Error>(SqsBatchResponse::default())
        }
    }))
    .await
}
