//! Task attachments (contracts v1, additive): what an owner attached to one of their tasks, the
//! rules an attachment must follow, and the `TaskAttachmentAdded` event announced once for each
//! attachment recorded on a task.
//!
//! An attachment is uploaded by its owner straight to S3 through a presigned URL the HTTP API
//! answers (`POST /tasks/{orderId}/attachments`), to the key
//! [`keys::attachment_key`](crate::keys::attachment_key) (`attachments/{o}/{orderId}/{id}`). The
//! attachments function checks every object that lands there (its real size and type from S3,
//! its bytes' signature, that the task is the owner's, the count) and records it on the task, or
//! deletes it and says why ([`AttachmentRefusal`]).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// EventBridge `DetailType` of an attachment recorded on a task (source `taskflow.tasks`).
pub const TASK_ATTACHMENT_ADDED: &str = "TaskAttachmentAdded";

/// Default largest attachment, in bytes (10 MiB); the template parameter `AttachmentMaxBytes`
/// sets the deployed one (`ATTACHMENT_MAX_BYTES`).
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default most attachments one task may have (`AttachmentsPerTask`, `MAX_ATTACHMENTS_PER_TASK`).
pub const DEFAULT_MAX_PER_TASK: usize = 10;
/// Largest attachment name, in bytes of UTF-8 (what most file systems take for a file name).
pub const MAX_NAME_BYTES: usize = 255;
/// Seconds a presigned upload URL is valid.
pub const UPLOAD_URL_SECONDS: u64 = 300;
/// Seconds a presigned download URL is valid.
pub const DOWNLOAD_URL_SECONDS: u64 = 60;

/// The content types an attachment may have, and the leading bytes ("magic numbers") its content
/// must start with: the type is checked on the bytes, not only on the header the uploader sent.
/// `text/plain` has no signature: it must be UTF-8 without NUL bytes.
pub const ALLOWED_CONTENT_TYPES: &[(&str, &[&[u8]])] = &[
    ("application/pdf", &[b"%PDF-"]),
    ("image/png", &[b"\x89PNG\r\n\x1a\n"]),
    ("image/jpeg", &[b"\xff\xd8\xff"]),
    ("image/webp", &[b"RIFF"]),
    ("text/plain", &[]),
];

/// An attachment as recorded on its task (`attachments` on the task record) and listed by
/// `GET /tasks/{orderId}/attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `a-` + 32 lowercase hex digits, made by the API ([`is_attachment_id`]).
    #[schemars(length(min = 34, max = 34))]
    pub id: String,
    /// The file name the owner gave, as given ([`check_name`]).
    #[schemars(length(min = 1, max = MAX_NAME_BYTES))]
    pub name: String,
    /// Bytes, as stored in S3.
    pub size: u64,
    /// One of [`ALLOWED_CONTENT_TYPES`], as stored in S3.
    pub content_type: String,
    /// `sha256:` + 64 lowercase hex digits of the stored bytes.
    pub checksum: String,
    /// When the object landed in S3.
    pub uploaded_at: DateTime<Utc>,
}

/// The `detail` of a `TaskAttachmentAdded` event (source `taskflow.tasks`): announced once for
/// every attachment recorded on a task, by the publisher, from the task table's stream (the
/// table is the outbox, as for `TaskStatusChanged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskAttachmentAdded {
    pub schema_version: u32,
    /// `{taskId}@{attachmentId}`: the same attachment always has the same event id; deduplicate
    /// on it. Treat it as opaque.
    #[schemars(length(min = 3, max = 80))]
    pub event_id: String,
    pub order_id: String,
    pub owner: String,
    pub attachment: Attachment,
    /// Position of the attachment on the task, from 1.
    pub position: u32,
}

impl TaskAttachmentAdded {
    /// The event id of attachment `attachment_id` of the task keyed `task_id`.
    pub fn event_id_for(task_id: &str, attachment_id: &str) -> String {
        format!("{task_id}@{attachment_id}")
    }
}

/// Why an attachment is refused: by the API before any upload URL is made (HTTP 400/409 with
/// this name as `error`), or by the attachments function after the object landed (the object is
/// deleted, and the reason logged and counted as metric `AttachmentsRefused` by `Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AttachmentRefusal {
    /// The name is empty, longer than [`MAX_NAME_BYTES`], has a control or format character,
    /// `/` or `\`, is `.` or `..`, or (on the object) is missing or unreadable.
    #[serde(rename = "INVALID_ATTACHMENT_NAME")]
    InvalidName,
    /// The content type is not on [`ALLOWED_CONTENT_TYPES`].
    #[serde(rename = "UNSUPPORTED_CONTENT_TYPE")]
    UnsupportedContentType,
    /// The bytes do not start as the content type's do (a `.exe` sent as `image/png`).
    #[serde(rename = "CONTENT_TYPE_MISMATCH")]
    ContentTypeMismatch,
    /// More bytes than the attachment size limit.
    #[serde(rename = "ATTACHMENT_TOO_LARGE")]
    TooLarge,
    /// An empty file.
    #[serde(rename = "EMPTY_ATTACHMENT")]
    Empty,
    /// The task has the most attachments it may have.
    #[serde(rename = "TOO_MANY_ATTACHMENTS")]
    TooMany,
    /// The object's key is not one the API hands out, or names no task of that owner.
    #[serde(rename = "UNKNOWN_ATTACHMENT_KEY")]
    UnknownKey,
    /// A refund names an attachment id that is not on its original order (of the same owner).
    #[serde(rename = "UNKNOWN_ATTACHMENT")]
    UnknownAttachment,
    /// The object of an attachment already recorded was written again with other bytes (its
    /// SHA-256 is not the recorded `checksum`): deleted, so that no other bytes are ever served
    /// under a recorded checksum. The upload URL is signed with `If-None-Match: *`, so S3 refuses
    /// a second PUT with 412 PreconditionFailed; this is the function's defence in depth.
    #[serde(rename = "ATTACHMENT_REPLACED")]
    Replaced,
}

impl AttachmentRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentRefusal::InvalidName => "INVALID_ATTACHMENT_NAME",
            AttachmentRefusal::UnsupportedContentType => "UNSUPPORTED_CONTENT_TYPE",
            AttachmentRefusal::ContentTypeMismatch => "CONTENT_TYPE_MISMATCH",
            AttachmentRefusal::TooLarge => "ATTACHMENT_TOO_LARGE",
            AttachmentRefusal::Empty => "EMPTY_ATTACHMENT",
            AttachmentRefusal::TooMany => "TOO_MANY_ATTACHMENTS",
            AttachmentRefusal::UnknownKey => "UNKNOWN_ATTACHMENT_KEY",
            AttachmentRefusal::UnknownAttachment => "UNKNOWN_ATTACHMENT",
            AttachmentRefusal::Replaced => "ATTACHMENT_REPLACED",
        }
    }
}

impl std::fmt::Display for AttachmentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True for an attachment id: `a-` + 32 lowercase hex digits.
pub fn is_attachment_id(text: &str) -> bool {
    text.len() == 34 && text.starts_with("a-") && text[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a file name: 1–[`MAX_NAME_BYTES`] bytes, no control or format characters (bidi
/// overrides, zero-width), no `/` or `\`, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), AttachmentRefusal> {
    let bad_char = |c: char| c.is_control() || c == '/' || c == '\\' || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name == "." || name == ".." || name.chars().any(bad_char) {
        return Err(AttachmentRefusal::InvalidName);
    }
    Ok(())
}

/// Checks a declared content type against the allow-list (exact, lower case, no parameters).
pub fn check_content_type(content_type: &str) -> Result<(), AttachmentRefusal> {
    if ALLOWED_CONTENT_TYPES.iter().any(|(t, _)| *t == content_type) {
        Ok(())
    } else {
        Err(AttachmentRefusal::UnsupportedContentType)
    }
}

/// Checks a declared size against the limit `max_bytes`.
pub fn check_size(size: u64, max_bytes: u64) -> Result<(), AttachmentRefusal> {
    match size {
        0 => Err(AttachmentRefusal::Empty),
        n if n > max_bytes => Err(AttachmentRefusal::TooLarge),
        _ => Ok(()),
    }
}

/// Checks that `bytes` look like `content_type` (its leading bytes; UTF-8 without NUL for text).
pub fn check_content(content_type: &str, bytes: &[u8]) -> Result<(), AttachmentRefusal> {
    let Some((_, magic)) = ALLOWED_CONTENT_TYPES.iter().find(|(t, _)| *t == content_type) else {
        return Err(AttachmentRefusal::UnsupportedContentType);
    };
    let ok = if content_type == "text/plain" {
        std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0)
    } else if content_type == "image/webp" {
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
    } else {
        magic.iter().any(|m| bytes.starts_with(m))
    };
    if ok { Ok(()) } else { Err(AttachmentRefusal::ContentTypeMismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["delivery-note.pdf", "photo of the damage.jpg", "李雷.png", "a"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "../etc/passwd", "a\\b", "a\nb", "evil\u{202e}gpj.exe", &"x".repeat(256)] {
            assert_eq!(check_name(bad), Err(AttachmentRefusal::InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn types_sizes_and_content_are_checked() {
        assert_eq!(check_content_type("application/pdf"), Ok(()));
        assert_eq!(check_content_type("application/x-msdownload"), Err(AttachmentRefusal::UnsupportedContentType));
        assert_eq!(check_content_type("IMAGE/PNG"), Err(AttachmentRefusal::UnsupportedContentType));
        assert_eq!(check_size(0, 10), Err(AttachmentRefusal::Empty));
        assert_eq!(check_size(11, 10), Err(AttachmentRefusal::TooLarge));
        assert_eq!(check_size(10, 10), Ok(()));
        assert_eq!(check_content("application/pdf", b"%PDF-1.7\n"), Ok(()));
        assert_eq!(check_content("image/png", b"MZ\x90\x00"), Err(AttachmentRefusal::ContentTypeMismatch));
        assert_eq!(check_content("text/plain", b"hello"), Ok(()));
        assert_eq!(check_content("text/plain", b"he\0llo"), Err(AttachmentRefusal::ContentTypeMismatch));
        assert_eq!(check_content("image/webp", b"RIFF\0\0\0\0WEBPVP8 "), Ok(()));
    }

    #[test]
    fn refusals_serialise_by_name() {
        for r in [AttachmentRefusal::TooLarge, AttachmentRefusal::UnknownAttachment, AttachmentRefusal::InvalidName, AttachmentRefusal::Replaced] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(is_attachment_id(&format!("a-{}", "0f".repeat(16))));
        assert!(!is_attachment_id("a-XYZ"));
    }
}
