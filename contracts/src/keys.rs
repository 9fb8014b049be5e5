//! Every key taskflow builds from caller text, in one place: the task table's and the ledger's
//! key, the idempotency keys, the Step Functions execution name, and the S3 keys of receipts and
//! notices. Nothing else may put an owner id or an order id into a key.
//!
//! # Task ids: order ids are scoped per owner
//!
//! An `orderId` is the submitter's choice, so two owners can pick the same one. A task is
//! therefore keyed by its **task id**, derived from the pair:
//!
//! ```text
//! task id = "t-" + hex(SHA-256("taskflow/v1/task" ␀ len(owner) owner ␀ len(orderId) orderId))[..32]
//! ```
//!
//! (each part length-prefixed, so the encoding is injective for any text). It is the task
//! table's and the ledger's partition key (`taskId`), the Step Functions execution name (34
//! characters of `[a-z0-9-]`, within the 1–80 of letters, digits, `-`, `_` that
//! [StartExecution](https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html)
//! allows), the stem of every idempotency key (`{taskId}/charge`, …) and of status event ids
//! (`{taskId}#{sequence}`). `orderId` and `owner` stay plain attributes of the task and fields
//! of every event. 128 bits of SHA-256: a collision by chance needs ~2^64 tasks, and one on
//! purpose a second preimage of SHA-256.
//!
//! Two more namespaces, through the same [`derive`], for records that must not occupy an
//! owner's order id:
//! - `c-…` ([`conflict_task_id`]): an order that reuses an owner's order id with different
//!   content, recorded REJECTED `ORDER_ID_CONFLICT` (one record per distinct content);
//! - `r-…` ([`unowned_task_id`]): an order rejected before it had a valid owner and order id
//!   (`INVALID_OWNER`, `INVALID_ORDER_ID`, …), keyed by the raw text it came with.
//!
//! # Stock keys: one inventory item per sku shard
//!
//! The stock of a sku may be split over `stockShards` items ([`stock_key`]). Shard 0 is keyed by
//! the sku itself (the key stock had before shards, so existing items stay valid); shard `k ≥ 1`
//! is keyed `{sku}#{k}#` padded with `_` to more than [`crate::limits::MAX_SKU_CHARS`]
//! characters. A sku may hold any character, so no separator alone keeps shard keys apart from
//! skus; length does: a shard key is longer than any sku can be, and it reads back to one
//! (sku, shard) pair only ([`parse_stock_key`]: the padding is the trailing `_` run, the shard the
//! digits between the last two `#` before it).
//!
//! # S3 keys: one prefix per owner
//!
//! An owner's objects live under `receipts/{o}/…` and `outbox/{o}/…`, where `{o}` is
//! [`owner_segment`]: the unpadded base64url (RFC 4648 §5) of the owner id's UTF-8 bytes. It is
//! injective (one owner, one prefix; no owner's prefix is another's), and uses only letters,
//! digits, `-` and `_`, the characters S3 calls safe for every tool
//! ([object key naming](https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html)):
//! never `/`, never `.` or `..`, nothing a shell, `aws s3 sync` or a URL treats specially.

use crate::owner::OwnerId;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex characters of the digest kept in a derived id (128 bits).
pub const DIGEST_HEX: usize = 32;

/// The one derivation: `prefix` + the first [`DIGEST_HEX`] hex digits of the SHA-256 of the
/// domain tag and the parts, each length-prefixed (u64, big-endian) so that no two different
/// lists of parts encode alike.
pub fn derive(prefix: &str, tag: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"taskflow/v1/");
    hash.update(tag.as_bytes());
    for part in parts {
        hash.update([0u8]);
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut id = String::with_capacity(prefix.len() + DIGEST_HEX);
    id.push_str(prefix);
    for byte in digest.iter().take(DIGEST_HEX / 2) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// The task id of `owner`'s order `order_id` (`t-` + 32 hex digits): the key of its task, its
/// ledger entry, its idempotency records, and its execution's name.
pub fn task_id(owner: &str, order_id: &str) -> String {
    derive("t-", "task", &[owner, order_id])
}

/// The key of the REJECTED `ORDER_ID_CONFLICT` record of an order that reused `owner`'s
/// `order_id` with content `fingerprint` ([`fingerprint`]): one per distinct content, so a
/// repeated conflicting event is one rejection, announced once.
pub fn conflict_task_id(owner: &str, order_id: &str, fingerprint: &str) -> String {
    derive("c-", "conflict", &[owner, order_id, fingerprint])
}

/// The key of an order rejected before it had a valid owner and order id, from the raw text it
/// came with and its content: never the key of any owner's order.
pub fn unowned_task_id(raw_owner: &str, raw_order_id: &str, fingerprint: &str) -> String {
    derive("r-", "unowned", &[raw_owner, raw_order_id, fingerprint])
}

/// True for any id this module derives (`t-`, `c-`, `r-` and 32 lowercase hex digits).
pub fn is_derived_id(text: &str) -> bool {
    matches!(text.get(..2), Some("t-" | "c-" | "r-"))
        && text.len() == 2 + DIGEST_HEX
        && text[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Fields of an order detail that are not its content: who, which id, which version, and the
/// payment token (a secret: never stored, not even hashed).
const NOT_CONTENT: [&str; 4] = ["orderId", "owner", "schemaVersion", "paymentToken"];

/// What an order asks for, as a hex SHA-256 of its detail without `orderId`, `owner`,
/// `schemaVersion` and `paymentToken`, in a canonical JSON form (object keys sorted at every
/// level). Two events of one order have the same fingerprint; an owner's reuse of an order id
/// for something else has another one.
pub fn fingerprint(detail: &Value) -> String {
    let content = match detail {
        Value::Object(map) => Value::Object(map.iter().filter(|(k, _)| !NOT_CONTENT.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()),
        other => other.clone(),
    };
    let mut text = String::new();
    canonical(&content, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of an order detail as intake and the HTTP API both compute it: of the order
/// as read (`OrderSubmitted`, so number spellings and absent defaults do not matter) when it
/// reads as one, else of the raw detail. A purchase's stated prices (`unitPrice`, `amount`) are
/// not part of what it asks for: they are assertions checked against the catalogue, never what
/// is charged, so a redelivery that states them (or not) is the same order, not a reuse of its id.
pub fn order_fingerprint(detail: &Value) -> String {
    match serde_json::from_value::<crate::OrderSubmitted>(detail.clone()) {
        Ok(mut order) => {
            if order.kind == crate::OrderKind::Purchase {
                order.amount = None;
                order.items.iter_mut().for_each(|item| item.unit_price = None);
            }
            fingerprint(&serde_json::to_value(&order).expect("orders always serialise"))
        }
        Err(_) => fingerprint(detail),
    }
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The inventory key of `sku`'s stock shard `shard`: the sku itself for shard 0, else
/// `{sku}#{shard}#` followed by `_` up to [`crate::limits::MAX_SKU_CHARS`] + 1 characters (at
/// least; longer skus get no padding beyond the `#{shard}#`). Never the key of another sku or
/// of another shard (see the module's "Stock keys").
pub fn stock_key(sku: &str, shard: u32) -> String {
    if shard == 0 {
        return sku.to_string();
    }
    let mut key = format!("{sku}#{shard}#");
    let chars = key.chars().count();
    let min = crate::limits::MAX_SKU_CHARS + 1;
    if chars < min {
        key.extend(std::iter::repeat_n('_', min - chars));
    }
    key
}

/// The (sku, shard) a key [`stock_key`] built, or `None` for a key it cannot have built. Any text
/// of at most [`crate::limits::MAX_SKU_CHARS`] characters reads as shard 0 of that sku.
pub fn parse_stock_key(key: &str) -> Option<(String, u32)> {
    if key.chars().count() <= crate::limits::MAX_SKU_CHARS {
        return (!key.is_empty()).then(|| (key.to_string(), 0));
    }
    let body = key.trim_end_matches('_').strip_suffix('#')?;
    let (sku, digits) = body.rsplit_once('#')?;
    let shard: u32 = digits.parse().ok()?;
    if shard == 0 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (stock_key(sku, shard) == key).then(|| (sku.to_string(), shard))
}

/// The key segment of an owner: the unpadded base64url of its UTF-8 bytes.
pub fn owner_segment(owner: &OwnerId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(owner.as_str().as_bytes())
}

/// Order ids: 1–80 characters of `[A-Za-z0-9_-]` (what intake accepts; also S3-safe).
pub const MAX_ORDER_ID_CHARS: usize = crate::limits::MAX_ORDER_ID_CHARS;

/// True if `order_id` follows the order id rule.
pub fn order_id_ok(order_id: &str) -> bool {
    !order_id.is_empty() && order_id.len() <= MAX_ORDER_ID_CHARS && order_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The prefix under which every receipt of `owner` is stored: `receipts/{owner_segment}/`.
pub fn receipts_prefix(owner: &OwnerId) -> String {
    format!("receipts/{}/", owner_segment(owner))
}

/// The prefix of every notice sent to `owner`: `outbox/{owner_segment}/`.
pub fn outbox_prefix(owner: &OwnerId) -> String {
    format!("outbox/{}/", owner_segment(owner))
}

/// The prefix of every task log of `owner`: `logs/{owner_segment}/`.
pub fn logs_prefix(owner: &OwnerId) -> String {
    format!("logs/{}/", owner_segment(owner))
}

/// The segment under `logs/` for the logs of orders rejected before they had a valid owner and
/// order id (`r-` task ids): `-`, which no owner segment can be (the base64url of at least one
/// byte is at least two characters).
pub const UNOWNED_LOGS_SEGMENT: &str = "-";

/// The S3 key of a task's audit log (one JSON Lines object, written once when the task is
/// closed): `logs/{owner_segment}/{orderId}/{taskId}.jsonl` — below the owner's prefix, and
/// named by the task id, so that an `ORDER_ID_CONFLICT` record (`c-…`) of the same order id
/// has a log of its own beside the order's (`t-…`). An order rejected before it had a valid
/// owner and order id is logged as `logs/-/{taskId}.jsonl`.
///
/// Errors: `task_id` is not an id [`derive`]d here ([`is_derived_id`]).
pub fn task_log_key(owner: &str, order_id: &str, task_id: &str) -> Result<String, KeyError> {
    if !is_derived_id(task_id) {
        return Err(KeyError(format!("task id {task_id:?} is not a derived id")));
    }
    match OwnerId::parse(owner) {
        Ok(owner) if order_id_ok(order_id) && !task_id.starts_with("r-") => Ok(format!("{}{order_id}/{task_id}.jsonl", logs_prefix(&owner))),
        _ => Ok(format!("logs/{UNOWNED_LOGS_SEGMENT}/{task_id}.jsonl")),
    }
}

/// Why an S3 key could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// `{area}/{owner_segment}/{order_id}/{leaf}`: the S3 key of an object about `owner`'s order.
/// `area` is `receipts` or `outbox`; `order_id` must follow the order id rule ([`order_id_ok`])
/// and `leaf` be made of letters, digits, `-`, `_` and `.` (not starting with `.`): otherwise
/// no key is built.
pub fn object_key(area: &str, owner: &OwnerId, order_id: &str, leaf: &str) -> Result<String, KeyError> {
    if !matches!(area, "receipts" | "outbox") {
        return Err(KeyError(format!("no area {area:?}")));
    }
    if !order_id_ok(order_id) {
        return Err(KeyError(format!("order id {order_id:?} cannot be part of a key")));
    }
    let leaf_ok = !leaf.is_empty() && !leaf.starts_with('.') && leaf.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !leaf_ok {
        return Err(KeyError(format!("leaf {leaf:?} cannot be part of a key")));
    }
    Ok(format!("{area}/{}/{order_id}/{leaf}", owner_segment(owner)))
}

/// The prefix of every attachment of `owner`: `attachments/{owner_segment}/`.
pub fn attachments_prefix(owner: &OwnerId) -> String {
    format!("attachments/{}/", owner_segment(owner))
}

/// `attachments/{owner_segment}/{order_id}/{attachment_id}`: the S3 key of one attachment of
/// `owner`'s order. `order_id` must follow the order id rule and `attachment_id` be an
/// attachment id (`a-` + 32 hex digits, made by the API, never caller text); the file name the
/// owner gave is never part of the key (it travels as signed object metadata).
pub fn attachment_key(owner: &OwnerId, order_id: &str, attachment_id: &str) -> Result<String, KeyError> {
    if !order_id_ok(order_id) {
        return Err(KeyError(format!("order id {order_id:?} cannot be part of a key")));
    }
    if !crate::attachment::is_attachment_id(attachment_id) {
        return Err(KeyError(format!("{attachment_id:?} is not an attachment id")));
    }
    Ok(format!("{}{order_id}/{attachment_id}", attachments_prefix(owner)))
}

/// The owner, order id and attachment id of an attachment key, or `None` for any key that
/// [`attachment_key`] could not have built (so an object written anywhere else is never taken
/// for an attachment of anyone).
pub fn parse_attachment_key(key: &str) -> Option<(OwnerId, String, String)> {
    let mut parts = key.split('/');
    let (area, segment, order_id, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if area != "attachments" || parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).ok()?;
    let owner = OwnerId::parse(std::str::from_utf8(&bytes).ok()?).ok()?;
    let rebuilt = attachment_key(&owner, order_id, id).ok()?;
    (rebuilt == key).then(|| (owner, order_id.to_string(), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_ids_are_per_owner_and_fit_an_execution_name() {
        let a = task_id("alice", "cart-42");
        assert_ne!(a, task_id("bob", "cart-42"));
        assert_ne!(a, task_id("alice", "cart-43"));
        assert_eq!(a, task_id("alice", "cart-42"));
        // Length-prefixed parts: moving text between owner and order id changes the id.
        assert_ne!(task_id("ab", "c"), task_id("a", "bc"));
        assert!(a.len() <= 80 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(is_derived_id(&a));
        assert!(!is_derived_id("cart-42"));
        // The three namespaces never meet.
        let f = fingerprint(&json!({}));
        assert_ne!(&conflict_task_id("alice", "cart-42", &f)[2..], &a[2..]);
        assert!(unowned_task_id("alice", "cart-42", &f).starts_with("r-"));
    }

    #[test]
    fn the_fingerprint_is_the_content_whatever_the_key_order_or_the_token() {
        let one = json!({"schemaVersion": 1, "orderId": "o", "owner": "a", "kind": "purchase", "currency": "EUR",
            "items": [{"sku": "A", "quantity": 1, "unitPrice": 5}], "paymentToken": "tok_approve"});
        let same = json!({"items": [{"unitPrice": 5, "sku": "A", "quantity": 1}], "currency": "EUR", "kind": "purchase",
            "owner": "b", "orderId": "p", "paymentToken": "tok_decline"});
        let other = json!({"kind": "purchase", "currency": "EUR", "items": [{"sku": "A", "quantity": 2, "unitPrice": 5}]});
        assert_eq!(fingerprint(&one), fingerprint(&same));
        assert_ne!(fingerprint(&one), fingerprint(&other));
        assert_eq!(fingerprint(&one).len(), 64);
    }

    #[test]
    fn stock_keys_keep_shard_0_and_never_meet_another_sku_or_shard() {
        assert_eq!(stock_key("HOT-1", 0), "HOT-1");
        let one = stock_key("HOT-1", 1);
        assert!(one.starts_with("HOT-1#1#") && one.chars().count() > crate::limits::MAX_SKU_CHARS, "{one}");
        // Skus that look like shard keys, skus ending in the padding character, the longest sku.
        let longest = "é".repeat(crate::limits::MAX_SKU_CHARS);
        let skus = ["HOT-1", "HOT-1#1", "HOT-1#1#", "HOT-1#1#_", "A_", "A", "A#", "#1#", "_", &longest];
        let mut seen = std::collections::HashMap::new();
        for sku in skus {
            for shard in [0, 1, 2, 10, crate::limits::MAX_STOCK_SHARDS - 1] {
                let key = stock_key(sku, shard);
                assert_eq!(parse_stock_key(&key), Some((sku.to_string(), shard)), "{key}");
                assert!(key.len() <= crate::limits::DYNAMODB_PARTITION_KEY_MAX_BYTES);
                if let Some(other) = seen.insert(key.clone(), (sku, shard)) {
                    panic!("{key:?} is both {other:?} and {:?}", (sku, shard));
                }
                // No shard key of one sku is any sku (a sku is at most MAX_SKU_CHARS long).
                assert_eq!(shard == 0, key.chars().count() <= crate::limits::MAX_SKU_CHARS, "{key}");
            }
        }
        assert_eq!(parse_stock_key(&format!("{}#0#", "A".repeat(70))), None);
        assert_eq!(parse_stock_key(&format!("A#1#{}", "_".repeat(70))), None, "more padding than stock_key writes");
    }

    #[test]
    fn task_logs_live_below_their_owner_and_are_named_by_task_id() {
        let t = task_id("alice", "o-1");
        assert_eq!(task_log_key("alice", "o-1", &t).unwrap(), format!("logs/YWxpY2U/o-1/{t}.jsonl"));
        assert!(task_log_key("alice", "o-1", &t).unwrap().starts_with(&logs_prefix(&OwnerId::parse("alice").unwrap())));
        let c = conflict_task_id("alice", "o-1", "f");
        assert_ne!(task_log_key("alice", "o-1", &c).unwrap(), task_log_key("alice", "o-1", &t).unwrap());
        let r = unowned_task_id("bob/../x", "o-1", "f");
        assert_eq!(task_log_key("bob/../x", "o-1", &r).unwrap(), format!("logs/-/{r}.jsonl"));
        assert_eq!(task_log_key("alice", "../o", &t).unwrap(), format!("logs/-/{t}.jsonl"));
        assert!(task_log_key("alice", "o-1", "../../etc").is_err());
        // No owner's segment is the unowned one.
        for owner in ["a", "-", "~"] {
            assert_ne!(owner_segment(&OwnerId::parse(owner).unwrap()), UNOWNED_LOGS_SEGMENT);
        }
    }

    #[test]
    fn owner_segments_are_injective_and_safe_for_every_tool() {
        let owners = ["alice", "bob", "bob+x@example.com", "李雷", "a.b", "a..b", "~", "alice@example.com"];
        let mut seen = std::collections::HashSet::new();
        for owner in owners {
            let segment = owner_segment(&OwnerId::parse(owner).unwrap());
            assert!(seen.insert(segment.clone()), "{owner}: its own prefix");
            assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{segment}");
            assert!(segment != "." && segment != "..");
        }
        assert_eq!(owner_segment(&OwnerId::parse("alice").unwrap()), "YWxpY2U");
        // No owner's prefix is a prefix of another's: the segment ends at the next '/'.
        let alice = OwnerId::parse("alice").unwrap();
        assert_eq!(object_key("receipts", &alice, "o-1", "COMPLETED.txt").unwrap(), "receipts/YWxpY2U/o-1/COMPLETED.txt");
        assert!(object_key("receipts", &alice, "../x", "COMPLETED.txt").is_err());
        assert!(object_key("receipts", &alice, "o-1", "../x").is_err());
        assert!(object_key("elsewhere", &alice, "o-1", "x").is_err());
        assert!(object_key("outbox", &alice, "o-1", "COMPLETED-abc.json").unwrap().starts_with(&outbox_prefix(&alice)));
    }

    #[test]
    fn attachment_keys_round_trip_and_nothing_else_reads_as_one() {
        let alice = OwnerId::parse("alice").unwrap();
        let id = format!("a-{}", "ab".repeat(16));
        let key = attachment_key(&alice, "o-1", &id).unwrap();
        assert_eq!(key, format!("attachments/YWxpY2U/o-1/{id}"));
        assert!(key.starts_with(&attachments_prefix(&alice)));
        let (owner, order, back) = parse_attachment_key(&key).unwrap();
        assert_eq!((owner.as_str(), order.as_str(), back.as_str()), ("alice", "o-1", id.as_str()));
        assert!(attachment_key(&alice, "../o", &id).is_err());
        assert!(attachment_key(&alice, "o-1", "photo.png").is_err());
        for other in ["receipts/YWxpY2U/o-1/COMPLETED.txt", &format!("attachments/YWxpY2U=/o-1/{id}"), &format!("attachments/YWxpY2U/o-1/{id}/x"), "attachments/YWxpY2U/o-1/a-zz"] {
            assert!(parse_attachment_key(other).is_none(), "{other}");
        }
    }
}
