//! Where receipts and notices go: the ports, and their S3 adapters. Receipts are stored in the
//! task bucket with server-side encryption; the notice (the email an owner would get) goes
//! through the notifier port — email through Amazon SES (`NOTIFIER=ses`, [`crate::email`]), or
//! the bucket's `outbox/` prefix (`NOTIFIER=outbox`) (`outbox/{owner segment}/{orderId}/{STATUS}-{id}.json`, built by
//! `taskflow_contracts::keys::object_key`), where it can be read like a mailbox.

use crate::receipt::Receipt;
use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("not delivered: {0}")]
pub struct DeliveryError(pub String);

#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Stores the receipt at its key (the same receipt twice is the same object).
    async fn store(&self, receipt: &Receipt) -> Result<(), DeliveryError>;
}

/// The message an owner receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub to: String,
    pub order_id: String,
    pub subject: String,
    pub receipt_key: String,
    pub body: String,
}

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError>;
}

/// The notifier chosen at start-up (`NOTIFIER`: `outbox` or `ses`).
#[async_trait]
impl Notifier for Box<dyn Notifier> {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        (**self).send(notice).await
    }
}

/// The task bucket: receipts under `receipts/`, notices under `outbox/`.
pub struct Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Bucket {
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self { client: aws_sdk_s3::Client::new(config), bucket: bucket.into() }
    }

    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), DeliveryError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DeliveryError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))
    }
}

#[async_trait]
impl ReceiptStore for Bucket {
    async fn store(&self, receipt: &Receipt) -> Result<(), DeliveryError> {
        self.put(&receipt.key, "text/plain; charset=utf-8", receipt.body.clone().into_bytes()).await
    }
}

#[async_trait]
impl Notifier for Bucket {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        // Every send is a new message in the outbox, as every email is: a notice sent twice
        // would show as two objects (the idempotency record is what prevents that).
        let status = notice.receipt_key.rsplit('/').next().unwrap_or("notice").trim_end_matches(".txt");
        let owner = taskflow_contracts::OwnerId::parse(&notice.to).map_err(|e| DeliveryError(e.to_string()))?;
        let leaf = format!("{status}-{}.json", uuid::Uuid::new_v4().simple());
        let key = taskflow_contracts::keys::object_key("outbox", &owner, &notice.order_id, &leaf).map_err(|e| DeliveryError(e.to_string()))?;
        self.put(&key, "application/json", serde_json::to_vec_pretty(notice).expect("notices serialise")).await
    }
}
