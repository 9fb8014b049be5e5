//! The notification Lambda: the notification queue's work messages → notices.

use taskflow_notification::{notifier::BucketNotifier, Notification};
use taskflow_shared::{clients, config, driver, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = clients::load().await;
    let notification = Notification {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        notifier: BucketNotifier::new(&aws, config::required("TASK_BUCKET")?),
    };
    driver::run(notification, &aws).await
}
