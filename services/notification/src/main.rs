//! The notification Lambda: the notification queue's work messages → receipts and notices.

use taskflow_notification::{notifier::Bucket, Notification};
use taskflow_shared::idempotency::DynamoIdempotency;
use taskflow_shared::{clients, config, driver, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("notification");
    let aws = clients::load().await;
    let notifier = config::required("NOTIFIER")?;
    if notifier != "outbox" {
        return Err(format!("NOTIFIER {notifier:?}: only \"outbox\" (the task bucket's outbox/ prefix) is available in this version").into());
    }
    let bucket = config::required("TASK_BUCKET")?;
    let notification = Notification {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        receipts: Bucket::new(&aws, &bucket),
        notifier: Bucket::new(&aws, bucket),
        once: Box::new(DynamoIdempotency::from_env(&aws)?),
    };
    driver::run(telemetry, notification, &aws).await
}
