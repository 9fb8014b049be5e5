//! The attachments function: every object that lands under `attachments/` in the task bucket (an
//! S3 event notification `s3:ObjectCreated:*` → the attachments queue → here) is checked and
//! recorded on its task, or deleted and refused by name.
//!
//! The checks, in order (the first broken rule wins; `AttachmentRefusal` names it):
//! 1. the key is one the API hands out (`keys::parse_attachment_key`: owner, order id,
//!    attachment id) and names a task of that owner (else `UNKNOWN_ATTACHMENT_KEY`);
//! 2. the object's real size (HeadObject, not the event's or the request's) is 1 byte to the
//!    size limit (`EMPTY_ATTACHMENT`, `ATTACHMENT_TOO_LARGE`);
//! 3. its stored content type is on the allow-list (`UNSUPPORTED_CONTENT_TYPE`), and its bytes
//!    start as that type's do (`CONTENT_TYPE_MISMATCH`);
//! 4. its file name (signed object metadata `name`, base64url of the UTF-8 name) follows the
//!    name rule (`INVALID_ATTACHMENT_NAME`);
//! 5. the task has room (`TOO_MANY_ATTACHMENTS`, checked in the same conditional write that
//!    records it).
//!
//! A refused object is deleted (and its refusal logged with the reason and counted as metric
//! `AttachmentsRefused` by `Reason`). A recorded one is appended to the task's `attachments` with
//! its SHA-256; the publisher announces it as `TaskAttachmentAdded` from the table's stream.
//! Idempotent: S3 delivers events at least once, and SQS again: an attachment already on the task
//! is not recorded twice, an object already deleted (gone) is nothing to do. An event for an
//! attachment already recorded whose object now holds other bytes (a second PUT to the same key)
//! deletes the object and is refused `ATTACHMENT_REPLACED`: the recorded checksum and type are
//! never left in front of other bytes.

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use taskflow_contracts::attachment::{self, AttachmentRefusal};
use taskflow_contracts::{keys, Attachment};
use taskflow_shared::tasks::{AttachmentRecorded, StoreError, TaskStore};
use thiserror::Error;

/// What S3 says about a stored object (HeadObject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes stored.
    pub size: u64,
    pub content_type: Option<String>,
    /// The user metadata `name` (base64url, no padding, of the UTF-8 file name).
    pub name: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Error)]
#[error("object store unavailable: {0}")]
pub struct ObjectError(pub String);

/// The task bucket, as far as this function uses it.
#[async_trait]
pub trait Objects: Send + Sync {
    /// The object's size, type and metadata; `None` if there is no such object (any more).
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError>;
    /// The object's bytes; `None` if there is no such object (any more).
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError>;
    /// Deletes the object (nothing if it is gone already).
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;
}

/// The limits the function enforces (template parameters `AttachmentMaxBytes`,
/// `AttachmentsPerTask`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_per_task: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: attachment::DEFAULT_MAX_BYTES, max_per_task: attachment::DEFAULT_MAX_PER_TASK }
    }
}

/// What one uploaded object came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Recorded on its task now.
    Recorded(Attachment),
    /// Already on its task (a duplicate event).
    AlreadyRecorded,
    /// No such object (deleted already: a duplicate event of a refused upload, or of one whose
    /// refusal is being finished).
    Gone,
    /// Refused and deleted.
    Refused(AttachmentRefusal, String),
}

#[derive(Debug, Error)]
pub enum CheckError {
    #[error("TaskStoreUnavailable: {0}")]
    Store(#[from] StoreError),
    #[error("ObjectStoreUnavailable: {0}")]
    Objects(#[from] ObjectError),
}

pub struct Checker<S, O> {
    pub tasks: S,
    pub objects: O,
    pub limits: Limits,
}

impl<S: TaskStore, O: Objects> Checker<S, O> {
    /// Checks the object at `key` (as the S3 event names it, URL-decoded) and records or refuses it.
    ///
    /// Errors: the task store or the bucket unavailable — nothing is decided, and the message is
    /// retried.
    pub async fn check(&self, key: &str, event_time: DateTime<Utc>) -> Result<Checked, CheckError> {
        let Some((owner, order_id, id)) = keys::parse_attachment_key(key) else {
            return self.refuse(key, AttachmentRefusal::UnknownKey, "not a key the API hands out".into()).await;
        };
        let task_id = keys::task_id(owner.as_str(), &order_id);
        let task = self.tasks.get(&task_id).await?;
        let Some(task) = task.filter(|t| t.owner == owner.as_str()) else {
            return self.refuse(key, AttachmentRefusal::UnknownKey, format!("no task {order_id} of this owner")).await;
        };
        if let Some(recorded) = task.attachments.iter().find(|a| a.id == id) {
            // A duplicate event, or the event of a second write to the same key (a reused upload
            // URL: S3 refuses it when signed with `If-None-Match: *`, as the API signs them; this
            // is the defence in depth). Only the bytes recorded may stay behind the recorded id.
            return self.recorded_again(key, &recorded.checksum).await;
        }
        let Some(info) = self.objects.head(key).await? else { return Ok(Checked::Gone) };
        if let Err(r) = attachment::check_size(info.size, self.limits.max_bytes) {
            return self.refuse(key, r, format!("{} bytes (limit {})", info.size, self.limits.max_bytes)).await;
        }
        let content_type = info.content_type.clone().unwrap_or_default();
        if let Err(r) = attachment::check_content_type(&content_type) {
            return self.refuse(key, r, format!("content type {content_type:?}")).await;
        }
        let name = info
            .name
            .as_deref()
            .and_then(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let Some(name) = name.filter(|n| attachment::check_name(n).is_ok()) else {
            return self.refuse(key, AttachmentRefusal::InvalidName, "no readable name in the object's metadata".into()).await;
        };
        let Some(bytes) = self.objects.read(key).await? else { return Ok(Checked::Gone) };
        if bytes.len() as u64 != info.size {
            // Overwritten between the two reads: the next event of that write decides.
            return Err(CheckError::Objects(ObjectError(format!("{key} changed while it was read"))));
        }
        if let Err(r) = attachment::check_content(&content_type, &bytes) {
            return self.refuse(key, r, format!("the bytes are not {content_type}")).await;
        }
        let checksum = checksum_of(&bytes);
        let recorded = Attachment { id, name, size: info.size, content_type, checksum, uploaded_at: info.last_modified.unwrap_or(event_time) };
        match self.tasks.add_attachment(&task_id, owner.as_str(), &recorded, self.limits.max_per_task).await? {
            AttachmentRecorded::Added => Ok(Checked::Recorded(recorded)),
            AttachmentRecorded::AlreadyThere => {
                // Recorded meanwhile by another delivery: with the checksum of the bytes it read.
                let task = self.tasks.get(&task_id).await?;
                match task.as_ref().and_then(|t| t.attachments.iter().find(|a| a.id == recorded.id)) {
                    Some(first) => self.recorded_again(key, &first.checksum).await,
                    None => Ok(Checked::AlreadyRecorded),
                }
            }
            AttachmentRecorded::Full => self.refuse(key, AttachmentRefusal::TooMany, format!("the task has {} attachments", self.limits.max_per_task)).await,
            AttachmentRecorded::Missing => self.refuse(key, AttachmentRefusal::UnknownKey, format!("no task {order_id} of this owner")).await,
        }
    }

    /// An event for an attachment already recorded with `checksum`: a duplicate when the stored
    /// bytes are still those (or gone), else a replacement — deleted, refused `ATTACHMENT_REPLACED`.
    async fn recorded_again(&self, key: &str, checksum: &str) -> Result<Checked, CheckError> {
        let Some(bytes) = self.objects.read(key).await? else { return Ok(Checked::AlreadyRecorded) };
        let stored = checksum_of(&bytes);
        if stored == checksum {
            return Ok(Checked::AlreadyRecorded);
        }
        self.refuse(key, AttachmentRefusal::Replaced, format!("the object was written again: {stored} ({} bytes), recorded {checksum}", bytes.len())).await
    }

    async fn refuse(&self, key: &str, reason: AttachmentRefusal, detail: String) -> Result<Checked, CheckError> {
        self.objects.delete(key).await?;
        Ok(Checked::Refused(reason, detail))
    }
}

/// `sha256:` + the lowercase hex SHA-256 of `bytes` (an attachment's `checksum`).
pub fn checksum_of(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The objects an S3 event notification names: (URL-decoded key, event time), for
/// `ObjectCreated:*` records. S3's test event (`"Event": "s3:TestEvent"`, sent when a notification
/// is configured) and other event names name none. Keys in S3 event notifications are
/// URL-encoded, spaces as `+` (Amazon S3 user guide, "Event message structure").
///
/// Errors: the body is not an S3 event notification (named, so the message goes to the DLQ).
pub fn objects_in(body: &str) -> Result<Vec<(String, String, DateTime<Utc>)>, String> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("NotAnS3Event: {e}"))?;
    if value["Event"] == "s3:TestEvent" {
        return Ok(Vec::new());
    }
    let records = value["Records"].as_array().ok_or("NotAnS3Event: no Records")?;
    let mut out = Vec::new();
    for record in records {
        if !record["eventName"].as_str().unwrap_or_default().starts_with("ObjectCreated:") {
            continue;
        }
        let bucket = record["s3"]["bucket"]["name"].as_str().ok_or("NotAnS3Event: no bucket")?.to_string();
        let raw = record["s3"]["object"]["key"].as_str().ok_or("NotAnS3Event: no key")?;
        let key = url_decode(&raw.replace('+', " ")).ok_or("NotAnS3Event: key not URL-encoded UTF-8")?;
        let at = record["eventTime"].as_str().and_then(|t| t.parse().ok()).unwrap_or_else(Utc::now);
        out.push((bucket, key, at));
    }
    Ok(out)
}

fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub mod s3;

#[cfg(test)]
mod tests;
