//! The notice an owner gets, and the port that delivers it. The S3 adapter stores it in the task
//! bucket under `notices/{owner}/{orderId}/{status}.json` with server-side encryption; an email
//! adapter would send the same notice.

use async_trait::async_trait;
use serde::Serialize;
use taskflow_contracts::{Money, OrderKind, TaskStatus};
use taskflow_shared::tasks::TaskRecord;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub order_id: String,
    pub owner: String,
    pub kind: Option<OrderKind>,
    pub status: TaskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub amount: Money,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    pub subject: String,
}

impl Notice {
    pub fn for_task(task: &TaskRecord) -> Notice {
        let what = task.kind.map_or("order", |k| k.as_str());
        let subject = match task.status {
            TaskStatus::Completed => format!("Your {what} {} is complete", task.order_id),
            TaskStatus::Failed | TaskStatus::Rejected => format!(
                "Your {what} {} could not be completed ({})",
                task.order_id,
                task.reason.map_or("unknown reason", |r| r.as_str())
            ),
            status => format!("Your {what} {} is {status}", task.order_id),
        };
        Notice {
            order_id: task.order_id.clone(),
            owner: task.owner.clone(),
            kind: task.kind,
            status: task.status,
            reason: task.reason.map(|r| r.as_str().to_string()),
            amount: task.amount,
            currency: task.currency.clone(),
            charge_id: task.charge_id.clone(),
            subject,
        }
    }

    /// Owner first, so access can be granted per owner by prefix.
    pub fn key(&self) -> String {
        format!("notices/{}/{}/{}.json", self.owner, self.order_id, self.status)
    }
}

#[derive(Debug, Error)]
#[error("notice not delivered: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers the notice; returns where it is kept.
    async fn send(&self, notice: &Notice) -> Result<String, NotifyError>;
}

pub struct BucketNotifier {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl BucketNotifier {
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self { client: aws_sdk_s3::Client::new(config), bucket: bucket.into() }
    }
}

#[async_trait]
impl Notifier for BucketNotifier {
    async fn send(&self, notice: &Notice) -> Result<String, NotifyError> {
        let key = notice.key();
        let body = serde_json::to_vec_pretty(notice).expect("notices always serialise");
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(body.into())
            .send()
            .await
            .map_err(|e| NotifyError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
        Ok(key)
    }
}
