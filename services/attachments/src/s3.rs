//! The task bucket adapter (S3 HeadObject, GetObject, DeleteObject on `attachments/*`).

use crate::{ObjectError, ObjectInfo, Objects};
use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;

pub struct Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Bucket {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bucket: impl Into<String>) -> Self {
        Self { client: aws.s3(), bucket: bucket.into() }
    }
}

#[async_trait]
impl Objects for Bucket {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                content_type: out.content_type().map(str::to_string),
                name: out.metadata().and_then(|m| m.get("name")).cloned(),
                last_modified: out.last_modified().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            })),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(ObjectError(DisplayErrorContext(&e).to_string())),
        }
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| ObjectError(e.to_string()))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(ObjectError(DisplayErrorContext(&e).to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| ObjectError(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
