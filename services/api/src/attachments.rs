//! Attachments over the HTTP API: an owner attaches files to their own tasks.
//!
//! - `POST /tasks/{orderId}/attachments` with `{"name", "contentType", "size"}` (bytes): checks the
//!   name, the type (allow-list) and the size (the limit) at once, and that the task has room,
//!   then answers 201 with a presigned S3 PUT (method, URL, and the headers to send with it:
//!   `content-type`, `content-length`, `x-amz-meta-name` and `if-none-match: *` are signed, so an
//!   upload of another size or type is refused by S3 with `SignatureDoesNotMatch`, and a second
//!   upload to the same URL with 412 `PreconditionFailed`) to the key
//!   `attachments/{o}/{orderId}/{attachmentId}` (`keys::attachment_key`), valid
//!   `attachment::UPLOAD_URL_SECONDS`. The attachment is recorded on the task once the
//!   attachments function has checked the object (`GET …/attachments` shows it then).
//!   Refusals: 400 with `error` one of `INVALID_ATTACHMENT_NAME`, `UNSUPPORTED_CONTENT_TYPE`,
//!   `ATTACHMENT_TOO_LARGE`, `EMPTY_ATTACHMENT`, or `NotAnAttachment` (body unreadable); 409
//!   `TOO_MANY_ATTACHMENTS`.
//! - `GET /tasks/{orderId}/attachments`: the task's attachments, in the order recorded.
//! - `GET /tasks/{orderId}/attachments/{attachmentId}`: the attachment and a presigned GET URL
//!   valid `attachment::DOWNLOAD_URL_SECONDS`, which downloads it under its name.
//!
//! Another owner's task (and its attachments) answers 404, exactly like a task that does not exist.

use crate::Answer;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use taskflow_contracts::attachment::{self, AttachmentRefusal};
use taskflow_contracts::{keys, OwnerId};
use taskflow_shared::tasks::{TaskRecord, TaskStore};
use thiserror::Error;

/// An attachment route, as API Gateway names it (`routeKey`), with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentRoute {
    Add(String),
    List(String),
    Read(String, String),
}

impl AttachmentRoute {
    pub fn from_key(route_key: &str, order_id: Option<&str>, attachment_id: Option<&str>) -> Option<AttachmentRoute> {
        match route_key {
            "POST /tasks/{orderId}/attachments" => order_id.map(|o| AttachmentRoute::Add(o.into())),
            "GET /tasks/{orderId}/attachments" => order_id.map(|o| AttachmentRoute::List(o.into())),
            "GET /tasks/{orderId}/attachments/{attachmentId}" => Some(AttachmentRoute::Read(order_id?.into(), attachment_id?.into())),
            _ => None,
        }
    }
}

/// A presigned request: what a plain HTTP client sends, as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presigned {
    pub method: String,
    pub url: String,
    /// Headers the request must carry exactly (they are signed).
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Error)]
#[error("presigning failed: {0}")]
pub struct PresignError(pub String);

/// Makes presigned S3 requests for the task bucket.
#[async_trait]
pub trait Presigner: Send + Sync {
    /// A PUT of `size` bytes of `content_type` to `key`, with user metadata `name` (ASCII),
    /// valid `seconds`.
    async fn upload(&self, key: &str, content_type: &str, size: u64, name: &str, seconds: u64) -> Result<Presigned, PresignError>;
    /// A GET of `key` that downloads as `disposition` (a `Content-Disposition`), valid `seconds`.
    async fn download(&self, key: &str, disposition: &str, seconds: u64) -> Result<Presigned, PresignError>;
}

/// What an owner asks to attach.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

pub struct AttachmentsApi<S, P> {
    pub tasks: S,
    pub presigner: P,
    pub max_bytes: u64,
    pub max_per_task: usize,
}

fn error(status: u16, error: &str, message: impl Into<String>) -> Answer {
    Answer { status, body: json!({"error": error, "message": message.into()}) }
}

fn refused(reason: AttachmentRefusal, message: impl Into<String>) -> Answer {
    let status = if reason == AttachmentRefusal::TooMany { 409 } else { 400 };
    error(status, reason.as_str(), message)
}

/// `attachment; filename*=UTF-8''…` (RFC 6266 / RFC 8187): any name, percent-encoded.
pub fn content_disposition(name: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<S: TaskStore, P: Presigner> AttachmentsApi<S, P> {
    /// Answers an attachment route for the authenticated `caller`.
    pub async fn handle(&self, route: AttachmentRoute, caller: &str, body: Option<&str>) -> Answer {
        if caller.is_empty() {
            return error(401, "Unauthorized", "no caller identity");
        }
        let owner = match OwnerId::parse(caller) {
            Ok(owner) => owner,
            Err(e) => return error(403, "InvalidOwner", format!("the token's subject cannot own orders: {e}")),
        };
        let order_id = match &route {
            AttachmentRoute::Add(o) | AttachmentRoute::List(o) | AttachmentRoute::Read(o, _) => o.clone(),
        };
        let task = match self.task(&owner, &order_id).await {
            Ok(Some(task)) => task,
            Ok(None) => return error(404, "NotFound", format!("no task {order_id}")),
            Err(answer) => return answer,
        };
        match route {
            AttachmentRoute::Add(_) => self.add(&owner, &task, body.unwrap_or_default()).await,
            AttachmentRoute::List(_) => Answer { status: 200, body: json!({"orderId": task.order_id, "attachments": task.attachments}) },
            AttachmentRoute::Read(_, id) => {
                let Some(found) = task.attachments.iter().find(|a| a.id == id) else {
                    return error(404, "NotFound", format!("no attachment {id} on task {order_id}"));
                };
                let key = match keys::attachment_key(&owner, &task.order_id, &found.id) {
                    Ok(key) => key,
                    Err(e) => return error(404, "NotFound", e.to_string()),
                };
                match self.presigner.download(&key, &content_disposition(&found.name), attachment::DOWNLOAD_URL_SECONDS).await {
                    Ok(download) => Answer { status: 200, body: json!({"attachment": found, "download": download}) },
                    Err(e) => error(503, "PresignUnavailable", e.to_string()),
                }
            }
        }
    }

    /// The caller's task `order_id`, read under the caller's own key only.
    async fn task(&self, owner: &OwnerId, order_id: &str) -> Result<Option<TaskRecord>, Answer> {
        if !keys::order_id_ok(order_id) {
            return Ok(None);
        }
        match self.tasks.get(&keys::task_id(owner.as_str(), order_id)).await {
            Ok(task) => Ok(task.filter(|t| t.owner == owner.as_str())),
            Err(e) => Err(error(503, "TaskStoreUnavailable", e.to_string())),
        }
    }

    async fn add(&self, owner: &OwnerId, task: &TaskRecord, body: &str) -> Answer {
        let Ok(new) = serde_json::from_str::<NewAttachment>(body) else {
            return error(400, "NotAnAttachment", r#"the body must be {"name": string, "contentType": string, "size": bytes}"#);
        };
        if let Err(r) = attachment::check_name(&new.name) {
            return refused(r, format!("name: 1-{} bytes, no control characters, no / or \\, not . or ..", attachment::MAX_NAME_BYTES));
        }
        if let Err(r) = attachment::check_content_type(&new.content_type) {
            let allowed: Vec<&str> = attachment::ALLOWED_CONTENT_TYPES.iter().map(|(t, _)| *t).collect();
            return refused(r, format!("content type {:?} is not one of {}", new.content_type, allowed.join(", ")));
        }
        if let Err(r) = attachment::check_size(new.size, self.max_bytes) {
            return refused(r, format!("size {} bytes: 1 to {} bytes", new.size, self.max_bytes));
        }
        if task.attachments.len() >= self.max_per_task {
            return refused(AttachmentRefusal::TooMany, format!("task {} has {} attachments, the most it may have", task.order_id, task.attachments.len()));
        }
        let id = format!("a-{}", uuid::Uuid::new_v4().simple());
        let key = match keys::attachment_key(owner, &task.order_id, &id) {
            Ok(key) => key,
            Err(e) => return error(404, "NotFound", e.to_string()),
        };
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(new.name.as_bytes());
        match self.presigner.upload(&key, &new.content_type, new.size, &name, attachment::UPLOAD_URL_SECONDS).await {
            Ok(upload) => Answer {
                status: 201,
                body: json!({"attachmentId": id, "orderId": task.order_id, "upload": upload,
                    "attachment": format!("/tasks/{}/attachments/{id}", task.order_id)}),
            },
            Err(e) => error(503, "PresignUnavailable", e.to_string()),
        }
    }
}

/// The S3 adapter: the official SDK's presigned requests (`aws-sdk-s3`, SigV4 query signing).
pub struct S3Presigner {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Presigner {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bucket: impl Into<String>) -> Self {
        Self { client: aws.s3(), bucket: bucket.into() }
    }
}

fn presigned(request: aws_sdk_s3::presigning::PresignedRequest, seconds: u64) -> Presigned {
    Presigned {
        method: request.method().to_string(),
        url: request.uri().to_string(),
        headers: request.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        expires_at: Utc::now() + Duration::seconds(seconds as i64),
    }
}

#[async_trait]
impl Presigner for S3Presigner {
    async fn upload(&self, key: &str, content_type: &str, size: u64, name: &str, seconds: u64) -> Result<Presigned, PresignError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(seconds)).map_err(|e| PresignError(e.to_string()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .metadata("name", name)
            // Signed `If-None-Match: *`: S3 writes the object only if the key has none, so the URL
            // uploads once; a second PUT (within its 300 s) is refused 412 PreconditionFailed
            // (Amazon S3 API reference, PutObject, "If-None-Match"; user guide, "Conditional writes").
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(|e| PresignError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
        Ok(presigned(request, seconds))
    }

    async fn download(&self, key: &str, disposition: &str, seconds: u64) -> Result<Presigned, PresignError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(seconds)).map_err(|e| PresignError(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(disposition)
            .presigned(config)
            .await
            .map_err(|e| PresignError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
        Ok(presigned(request, seconds))
    }
}

#[cfg(test)]
mod tests;
