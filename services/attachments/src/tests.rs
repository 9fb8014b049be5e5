use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_contracts::{OwnerId, TaskStatus};
use taskflow_shared::fakes::InMemoryTaskStore;
use taskflow_shared::tasks::TaskRecord;

#[derive(Default)]
struct FakeBucket {
    objects: Mutex<HashMap<String, (ObjectInfo, Vec<u8>)>>,
    deleted: Mutex<Vec<String>>,
}

impl FakeBucket {
    fn put(&self, key: &str, content_type: &str, name: Option<&str>, bytes: &[u8]) {
        let info = ObjectInfo {
            size: bytes.len() as u64,
            content_type: Some(content_type.into()),
            name: name.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
            last_modified: Some(Utc::now()),
        };
        self.objects.lock().unwrap().insert(key.into(), (info, bytes.to_vec()));
    }
    fn has(&self, key: &str) -> bool {
        self.objects.lock().unwrap().contains_key(key)
    }
}

#[async_trait]
impl Objects for FakeBucket {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        Ok(self.objects.lock().unwrap().get(key).map(|(i, _)| i.clone()))
    }
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        Ok(self.objects.lock().unwrap().get(key).map(|(_, b)| b.clone()))
    }
    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.objects.lock().unwrap().remove(key);
        self.deleted.lock().unwrap().push(key.into());
        Ok(())
    }
}

fn id(n: u8) -> String {
    format!("a-{}", format!("{n:02x}").repeat(16))
}

fn key(owner: &str, order: &str, n: u8) -> String {
    keys::attachment_key(&OwnerId::parse(owner).unwrap(), order, &id(n)).unwrap()
}

fn checker(limits: Limits) -> Checker<InMemoryTaskStore, FakeBucket> {
    let task = TaskRecord::new("o-1", "alice", TaskStatus::Completed, None, Utc::now());
    Checker { tasks: InMemoryTaskStore::with([task]), objects: FakeBucket::default(), limits }
}

const PDF: &[u8] = b"%PDF-1.7\n%delivery note\n";

#[tokio::test]
async fn a_good_upload_is_recorded_once_with_its_checksum_even_when_its_event_comes_twice() {
    let c = checker(Limits::default());
    let k = key("alice", "o-1", 1);
    c.objects.put(&k, "application/pdf", Some("delivery note.pdf"), PDF);
    let Checked::Recorded(a) = c.check(&k, Utc::now()).await.unwrap() else { panic!("not recorded") };
    assert_eq!((a.id.as_str(), a.name.as_str(), a.size, a.content_type.as_str()), (id(1).as_str(), "delivery note.pdf", PDF.len() as u64, "application/pdf"));
    assert_eq!(a.checksum, format!("sha256:{}", Sha256::digest(PDF).iter().map(|b| format!("{b:02x}")).collect::<String>()));
    assert_eq!(c.check(&k, Utc::now()).await.unwrap(), Checked::AlreadyRecorded);
    assert_eq!(c.tasks.of("alice", "o-1").unwrap().attachments, vec![a]);
    assert!(c.objects.has(&k));
}

#[tokio::test]
async fn every_broken_rule_deletes_the_object_records_nothing_and_names_why() {
    let c = checker(Limits { max_bytes: 64, max_per_task: 10 });
    let cases: Vec<(String, &str, Option<&str>, Vec<u8>, AttachmentRefusal)> = vec![
        (key("alice", "o-1", 1), "application/pdf", Some("big.pdf"), [PDF, &[b'x'; 64]].concat(), AttachmentRefusal::TooLarge),
        (key("alice", "o-1", 2), "application/x-msdownload", Some("a.exe"), b"MZ..".to_vec(), AttachmentRefusal::UnsupportedContentType),
        (key("alice", "o-1", 3), "image/png", Some("a.png"), b"MZ..".to_vec(), AttachmentRefusal::ContentTypeMismatch),
        (key("alice", "o-1", 4), "application/pdf", None, PDF.to_vec(), AttachmentRefusal::InvalidName),
        (key("alice", "o-1", 5), "application/pdf", Some("a.pdf"), Vec::new(), AttachmentRefusal::Empty),
        // Another owner's prefix naming alice's order id: no such task of that owner.
        (key("bob", "o-1", 6), "application/pdf", Some("a.pdf"), PDF.to_vec(), AttachmentRefusal::UnknownKey),
        ("attachments/not-a-key".to_string(), "application/pdf", Some("a.pdf"), PDF.to_vec(), AttachmentRefusal::UnknownKey),
    ];
    for (k, content_type, name, bytes, reason) in cases {
        c.objects.put(&k, content_type, name, &bytes);
        match c.check(&k, Utc::now()).await.unwrap() {
            Checked::Refused(r, _) => assert_eq!(r, reason, "{k}"),
            other => panic!("{k}: {other:?}"),
        }
        assert!(!c.objects.has(&k), "{k} deleted");
        // The same event again: the object is gone, nothing more happens.
        let again = c.check(&k, Utc::now()).await.unwrap();
        assert!(matches!(again, Checked::Gone | Checked::Refused(AttachmentRefusal::UnknownKey, _)), "{again:?}");
    }
    assert!(c.tasks.of("alice", "o-1").unwrap().attachments.is_empty());
}

#[tokio::test]
async fn a_task_takes_no_more_than_its_limit() {
    let c = checker(Limits { max_bytes: 1024, max_per_task: 2 });
    for n in 1..=3 {
        c.objects.put(&key("alice", "o-1", n), "text/plain", Some("n.txt"), b"hello");
    }
    assert!(matches!(c.check(&key("alice", "o-1", 1), Utc::now()).await.unwrap(), Checked::Recorded(_)));
    assert!(matches!(c.check(&key("alice", "o-1", 2), Utc::now()).await.unwrap(), Checked::Recorded(_)));
    assert!(matches!(c.check(&key("alice", "o-1", 3), Utc::now()).await.unwrap(), Checked::Refused(AttachmentRefusal::TooMany, _)));
    assert_eq!(c.tasks.of("alice", "o-1").unwrap().attachments.len(), 2);
    assert!(!c.objects.has(&key("alice", "o-1", 3)));
}

#[test]
fn s3_event_notifications_are_read_as_aws_sends_them() {
    // The shape of the Amazon S3 user guide's "Event message structure" (key URL-encoded).
    let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
        "eventTime":"2026-11-29T12:00:00.000Z","eventName":"ObjectCreated:Put",
        "s3":{"s3SchemaVersion":"1.0","configurationId":"attachments","bucket":{"name":"b","arn":"arn:aws:s3:::b"},
        "object":{"key":"attachments/YWxpY2U/o-1/a-0101%2Bx+y","size":5,"eTag":"e","sequencer":"0A"}}}]}"#;
    let objects = objects_in(body).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!((objects[0].0.as_str(), objects[0].1.as_str()), ("b", "attachments/YWxpY2U/o-1/a-0101+x y"));
    assert!(objects_in(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#).unwrap().is_empty());
    assert!(objects_in("not json").is_err());
}

#[tokio::test]
async fn other_bytes_written_behind_a_recorded_attachment_are_deleted_and_named_replaced() {
    let c = checker(Limits::default());
    let k = key("alice", "o-1", 1);
    c.objects.put(&k, "application/pdf", Some("delivery note.pdf"), PDF);
    let Checked::Recorded(first) = c.check(&k, Utc::now()).await.unwrap() else { panic!("not recorded") };
    // The same upload URL used again (were S3 to take it): an executable under the PDF's id.
    c.objects.put(&k, "application/pdf", Some("delivery note.pdf"), b"MZ\x90\x00 a program");
    match c.check(&k, Utc::now()).await.unwrap() {
        Checked::Refused(AttachmentRefusal::Replaced, detail) => assert!(detail.contains(&first.checksum), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(!c.objects.has(&k), "the other bytes are deleted");
    assert_eq!(c.tasks.of("alice", "o-1").unwrap().attachments, vec![first], "the record is unchanged");
    // Its event again: the object is gone, nothing more to do.
    assert_eq!(c.check(&k, Utc::now()).await.unwrap(), Checked::AlreadyRecorded);
    // The same bytes written again (a duplicate event of the first write, or the same file): kept.
    let k2 = key("alice", "o-1", 2);
    c.objects.put(&k2, "text/plain", Some("n.txt"), b"hello");
    assert!(matches!(c.check(&k2, Utc::now()).await.unwrap(), Checked::Recorded(_)));
    c.objects.put(&k2, "text/plain", Some("n.txt"), b"hello");
    assert_eq!(c.check(&k2, Utc::now()).await.unwrap(), Checked::AlreadyRecorded);
    assert!(c.objects.has(&k2));
}
