use super::*;
use std::sync::Mutex;
use taskflow_contracts::{Attachment, TaskStatus};
use taskflow_shared::fakes::InMemoryTaskStore;

#[derive(Default)]
struct FakePresigner(Mutex<Vec<(String, String)>>);

#[async_trait]
impl Presigner for FakePresigner {
    async fn upload(&self, key: &str, content_type: &str, size: u64, name: &str, seconds: u64) -> Result<Presigned, PresignError> {
        self.0.lock().unwrap().push(("PUT".into(), key.into()));
        let headers = BTreeMap::from([("content-type".into(), content_type.into()), ("content-length".into(), size.to_string()), ("x-amz-meta-name".into(), name.into())]);
        Ok(Presigned { method: "PUT".into(), url: format!("http://s3/{key}"), headers, expires_at: Utc::now() + Duration::seconds(seconds as i64) })
    }
    async fn download(&self, key: &str, _disposition: &str, seconds: u64) -> Result<Presigned, PresignError> {
        self.0.lock().unwrap().push(("GET".into(), key.into()));
        Ok(Presigned { method: "GET".into(), url: format!("http://s3/{key}"), headers: BTreeMap::new(), expires_at: Utc::now() + Duration::seconds(seconds as i64) })
    }
}

fn api() -> AttachmentsApi<InMemoryTaskStore, FakePresigner> {
    let mut alice = TaskRecord::new("o-1", "alice", TaskStatus::Completed, None, Utc::now());
    alice.attachments.push(Attachment {
        id: format!("a-{}", "1".repeat(32)),
        name: "note.pdf".into(),
        size: 9,
        content_type: "application/pdf".into(),
        checksum: "sha256:00".into(),
        uploaded_at: Utc::now(),
    });
    let bob = TaskRecord::new("o-2", "bob", TaskStatus::Completed, None, Utc::now());
    AttachmentsApi { tasks: InMemoryTaskStore::with([alice, bob]), presigner: FakePresigner::default(), max_bytes: 1000, max_per_task: 2 }
}

fn body(name: &str, content_type: &str, size: u64) -> String {
    json!({"name": name, "contentType": content_type, "size": size}).to_string()
}

#[tokio::test]
async fn the_owner_gets_an_upload_url_for_a_key_of_their_own_task() {
    let api = api();
    let answer = api.handle(AttachmentRoute::Add("o-1".into()), "alice", Some(&body("photo of the damage.jpg", "image/jpeg", 500))).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = answer.body["attachmentId"].as_str().unwrap();
    assert!(attachment::is_attachment_id(id));
    let key = keys::attachment_key(&OwnerId::parse("alice").unwrap(), "o-1", id).unwrap();
    assert_eq!(api.presigner.0.lock().unwrap().clone(), vec![("PUT".to_string(), key)]);
    assert_eq!(answer.body["upload"]["headers"]["content-length"], "500");
    assert_eq!(answer.body["upload"]["headers"]["x-amz-meta-name"], base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("photo of the damage.jpg"));
}

#[tokio::test]
async fn bad_names_types_sizes_and_full_tasks_are_refused_by_name_before_any_url() {
    let api = api();
    let cases = [
        (body("../x", "image/png", 5), 400, "INVALID_ATTACHMENT_NAME"),
        (body("a.exe", "application/x-msdownload", 5), 400, "UNSUPPORTED_CONTENT_TYPE"),
        (body("a.png", "image/png", 1001), 400, "ATTACHMENT_TOO_LARGE"),
        (body("a.png", "image/png", 0), 400, "EMPTY_ATTACHMENT"),
        ("{}".to_string(), 400, "NotAnAttachment"),
    ];
    for (b, status, name) in cases {
        let answer = api.handle(AttachmentRoute::Add("o-1".into()), "alice", Some(&b)).await;
        assert_eq!((answer.status, answer.body["error"].as_str().unwrap()), (status, name), "{b}");
    }
    assert!(api.presigner.0.lock().unwrap().is_empty());
    // Full: the task has max_per_task attachments.
    let mut full = api.tasks.of("alice", "o-1").unwrap();
    full.attachments.push(Attachment { id: format!("a-{}", "2".repeat(32)), ..full.attachments[0].clone() });
    let api = AttachmentsApi { tasks: InMemoryTaskStore::with([full]), ..api };
    let answer = api.handle(AttachmentRoute::Add("o-1".into()), "alice", Some(&body("a.png", "image/png", 5))).await;
    assert_eq!((answer.status, answer.body["error"].as_str().unwrap()), (409, "TOO_MANY_ATTACHMENTS"));
}

#[tokio::test]
async fn another_owners_task_is_not_found_on_every_route() {
    let api = api();
    let id = format!("a-{}", "1".repeat(32));
    for route in [AttachmentRoute::Add("o-1".into()), AttachmentRoute::List("o-1".into()), AttachmentRoute::Read("o-1".into(), id.clone()), AttachmentRoute::List("nope".into())] {
        let answer = api.handle(route.clone(), "bob", Some(&body("a.png", "image/png", 5))).await;
        assert_eq!(answer.status, 404, "{route:?}");
    }
    assert!(api.presigner.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_owner_lists_and_gets_a_download_url() {
    let api = api();
    let id = format!("a-{}", "1".repeat(32));
    let list = api.handle(AttachmentRoute::List("o-1".into()), "alice", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["attachments"][0]["id"], id.as_str());
    let one = api.handle(AttachmentRoute::Read("o-1".into(), id.clone()), "alice", None).await;
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.body["download"]["method"], "GET");
    let missing = api.handle(AttachmentRoute::Read("o-1".into(), format!("a-{}", "3".repeat(32))), "alice", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(content_disposition("a b/é.pdf"), "attachment; filename*=UTF-8''a%20b%2F%C3%A9.pdf");
}

/// The SDK's presigned PUT signs the headers that fix what may be uploaded, and that it is the
/// first upload to the key.
#[tokio::test]
async fn the_sdk_signs_content_length_content_type_and_the_name() {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(aws_sdk_s3::config::Credentials::new("AKID", "secret", None, None, "test")))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let p = S3Presigner::new(&config, "bucket");
    let up = p.upload("attachments/YWxpY2U/o-1/a-1", "image/png", 123, "bmFtZQ", 300).await.unwrap();
    assert_eq!(up.method, "PUT");
    assert!(up.url.starts_with("http://127.0.0.1:9/bucket/attachments/YWxpY2U/o-1/a-1?"), "{}", up.url);
    let signed = up.url.split("X-Amz-SignedHeaders=").nth(1).unwrap().split('&').next().unwrap().to_string();
    // `if-none-match: *` too: the URL uploads once (S3 answers a second PUT 412).
    assert_eq!(signed, "content-length%3Bcontent-type%3Bhost%3Bif-none-match%3Bx-amz-meta-name", "{}", up.url);
    assert_eq!(up.headers.get("if-none-match").map(String::as_str), Some("*"));
    assert!(up.url.contains("X-Amz-Expires=300"));
    assert_eq!(up.headers.get("content-length").map(String::as_str), Some("123"));
}
