//! Where receipts and notices go: the ports, and their S3 adapters. Receipts are stored in the
//! task bucket with server-side encryption; the notice (the email an owner would get) goes
//! through the notifier port — email through Amazon SES (`NOTIFIER=ses`, [`crate::email`]), or
//! the bucket's `outbox/` prefix (`NOTIFIER=outbox`) (`outbox/{owner segment}/{orderId}/{STATUS}-notice.json`, one object per notice, built by
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
    /// True when sending the same notice again delivers nothing new (the outbox: one object per
    /// notice, written with a conditional put), so no idempotency record needs to guard it.
    /// False (the default) for a channel that delivers every send, such as SES.
    fn idempotent(&self) -> bool {
        false
    }
}

/// The notifier chosen at start-up (`NOTIFIER`: `outbox` or `ses`).
#[async_trait]
impl Notifier for Box<dyn Notifier> {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        (**self).send(notice).await
    }
    fn idempotent(&self) -> bool {
        (**self).idempotent()
    }
}

/// The task bucket: receipts under `receipts/`, notices under `outbox/`.
pub struct Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Bucket {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bucket: impl Into<String>) -> Self {
        Self { client: aws.s3(), bucket: bucket.into() }
    }

    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>, only_new: bool) -> Result<(), DeliveryError> {
        let request = self.client.put_object();
        // `If-None-Match: *`: written only if no object has the key; a repeat gets 412
        // PreconditionFailed, which means "already there" (S3 conditional writes:
        // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
        let request = if only_new { request.if_none_match("*") } else { request };
        let result = request
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(body.into())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if only_new && e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(()),
            Err(e) => Err(DeliveryError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())),
        }
    }
}

#[async_trait]
impl ReceiptStore for Bucket {
    async fn store(&self, receipt: &Receipt) -> Result<(), DeliveryError> {
        self.put(&receipt.key, "text/plain; charset=utf-8", receipt.body.clone().into_bytes(), false).await
    }
}

#[async_trait]
impl Notifier for Bucket {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        // One object per notice (the order's status it tells of), written only if absent: a
        // notice sent twice is still one object, by S3's conditional put, with no idempotency
        // record around it (`idempotent`).
        let status = notice.receipt_key.rsplit('/').next().unwrap_or("notice").trim_end_matches(".txt");
        let owner = taskflow_contracts::OwnerId::parse(&notice.to).map_err(|e| DeliveryError(e.to_string()))?;
        let leaf = format!("{status}-notice.json");
        let key = taskflow_contracts::keys::object_key("outbox", &owner, &notice.order_id, &leaf).map_err(|e| DeliveryError(e.to_string()))?;
        self.put(&key, "application/json", serde_json::to_vec_pretty(notice).expect("notices serialise"), true).await
    }

    fn idempotent(&self) -> bool {
        true
    }
}
