//! The notification Lambda: the notification queue's work messages → receipts and notices.

use taskflow_notification::email::{CognitoRecipients, SesNotifier};
use taskflow_notification::notifier::{Bucket, Notifier};
use taskflow_notification::Notification;
use taskflow_shared::idempotency::DynamoIdempotency;
use taskflow_shared::{clients, config, driver, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("notification");
    let aws = clients::shared().await;
    let bucket = config::required("TASK_BUCKET")?;
    // The template's `Notifier` parameter: email through SES, or the bucket's outbox/ prefix.
    let notifier: Box<dyn Notifier> = match config::required("NOTIFIER")?.as_str() {
        "outbox" => Box::new(Bucket::new(&aws, &bucket)),
        "ses" => Box::new(SesNotifier::new(
            &aws,
            config::required("SENDER_ADDRESS")?,
            std::env::var("CONFIGURATION_SET").ok(),
            CognitoRecipients::new(&aws, config::required("OWNER_POOL_ID")?),
        )),
        other => return Err(format!("NOTIFIER {other:?}: \"ses\" (Amazon SES) or \"outbox\" (the task bucket's outbox/ prefix)").into()),
    };
    let notification = Notification {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        receipts: Bucket::new(&aws, &bucket),
        notifier,
        once: Box::new(DynamoIdempotency::from_env(&aws)?),
    };
    driver::run(telemetry, notification, &aws).await
}
