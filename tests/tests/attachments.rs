//! Attachments end to end on the local stack: presigned uploads with a plain HTTP client (as
//! curl would send them), the S3 event → attachments function → task record → publisher →
//! `TaskAttachmentAdded` path, the refusals at the API, at S3 (the emulator's presigned-URL
//! checks) and by the attachments function, and downloads. One stack, one test.

use serde_json::{json, Value};
use std::time::Duration;
use taskflow_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};


/// An HTTP/1.1 exchange with a URL as a plain client sends it: (status, body bytes).
async fn send(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("a local URL is plain HTTP on loopback");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_length {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    // Read to the end of the answer: its Content-Length when it has one, else the close.
    let mut response = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await.expect("an answer within 30 s").unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
            if length.is_some_and(|l| response.len() >= end + 4 + l) || (method == "HEAD" && length.is_some()) {
                break;
            }
        }
    }
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut payload = response[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &payload[..];
        while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap().trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line + 2..line + 2 + size]);
            rest = &rest[line + 2 + size + 2..];
        }
        payload = out;
    }
    (status, payload)
}

/// The headers an upload answer says to send, as (name, value).
fn headers_of(upload: &Value) -> Vec<(String, String)> {
    upload["headers"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(name)).cloned().collect();
    out.push((name.to_string(), value.to_string()));
    out
}

/// Asks the API for an upload URL.
async fn ask(token: &str, order: &str, name: &str, content_type: &str, size: usize) -> (u16, Value) {
    let body = json!({"name": name, "contentType": content_type, "size": size}).to_string();
    http("POST", &format!("/tasks/{order}/attachments"), Some(token), Some(&body)).await
}

async fn attachments(token: &str, order: &str) -> Vec<Value> {
    let (status, body) = http("GET", &format!("/tasks/{order}/attachments"), Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["attachments"].as_array().unwrap().clone()
}

/// A queue subscribed to `TaskAttachmentAdded` on the stack's bus: (queue URL, rule name).
async fn subscribe(run: &Run) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let bus = stack().output("EventBusName").unwrap().to_string();
    let name = format!("attached-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    let pattern = json!({"source": ["taskflow.tasks"], "detail-type": ["TaskAttachmentAdded"]});
    events.put_rule().name(&name).event_bus_name(&bus).event_pattern(pattern.to_string()).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("t").arn(arn).build().unwrap();
    events.put_targets().rule(&name).event_bus_name(&bus).targets(target).send().await.unwrap();
    (url, name)
}

async fn attachment_events(run: &Run, queue: &str, until: usize, within: Duration) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < until && tokio::time::Instant::now() < deadline {
        let out = sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(2).send().await.unwrap();
        for m in out.messages.unwrap_or_default() {
            seen.push(serde_json::from_str::<Value>(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
    seen
}

/// Waits until `order`'s attachment list has `n` entries (the function works asynchronously).
async fn until_recorded(token: &str, order: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = attachments(token, order).await;
        if list.len() >= n || tokio::time::Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn log_of(function: &str) -> String {
    std::fs::read_to_string(log_dir().join(format!("{function}.log"))).unwrap_or_default()
}

/// Waits until the attachments function logged a refusal of `key` with `reason`.
async fn until_refused(key: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !log_of("attachments").lines().any(|l| l.contains(key) && l.contains(reason) && l.contains("refused")) {
        assert!(tokio::time::Instant::now() < deadline, "no refusal {reason} of {key} logged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn object_exists(run: &Run, key: &str) -> bool {
    let s3 = aws_sdk_s3::Client::new(&run.aws);
    s3.head_object().bucket(stack().output("TaskBucketName").unwrap()).key(key).send().await.is_ok()
}

fn key_of(upload: &Value) -> String {
    let url = upload["url"].as_str().unwrap();
    let path = url.split('?').next().unwrap();
    let bucket = stack().output("TaskBucketName").unwrap();
    path.split(&format!("/{bucket}/")).nth(1).unwrap().to_string()
}

/// The upload URL is signed with `If-None-Match: *`, so S3 refuses a second PUT to it (412
/// PreconditionFailed) and the recorded bytes stay; without the header, the signature does not
/// match.
async fn a_second_upload_to_the_url_is_refused(upload: &Value, token: &str, order: &str, id: &str) {
    let url = upload["url"].as_str().unwrap();
    assert_eq!(upload["headers"]["if-none-match"], "*", "{upload}");
    assert!(url.contains("if-none-match"), "signed: {url}");
    let other: Vec<u8> = (0..PDF.len()).map(|i| (i * 37 % 251) as u8).collect();
    let (status, body) = send("PUT", url, &headers_of(upload), &other).await;
    assert_eq!(status, 412, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("PreconditionFailed"));
    let without: Vec<(String, String)> = headers_of(upload).into_iter().filter(|(k, _)| k != "if-none-match").collect();
    let (status, body) = send("PUT", url, &without, &other).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (_, read) = http("GET", &format!("/tasks/{order}/attachments/{id}"), Some(token), None).await;
    let (status, bytes) = send("GET", read["download"]["url"].as_str().unwrap(), &[], b"").await;
    assert_eq!((status, bytes.as_slice()), (200, PDF), "still the first upload");
}

/// Defence in depth: other bytes written behind a recorded attachment anyway (here by a caller
/// with bucket access, unconditionally) are deleted by the attachments function, refused
/// ATTACHMENT_REPLACED; the record stays as it was.
async fn other_bytes_behind_a_recorded_attachment_are_deleted(run: &Run, owner: &str, order: &str, id: &str, recorded: &[taskflow_contracts::Attachment]) {
    let s3 = aws_sdk_s3::Client::new(&run.aws);
    let key = taskflow_contracts::keys::attachment_key(&taskflow_contracts::OwnerId::parse(owner).unwrap(), order, id).unwrap();
    let bucket = stack().output("TaskBucketName").unwrap();
    s3.put_object().bucket(bucket).key(&key).content_type("text/plain").body(b"MZ\x90\x00 a program".to_vec().into()).send().await.unwrap();
    until_refused(&key, "ATTACHMENT_REPLACED").await;
    assert!(!object_exists(run, &key).await, "the other bytes are deleted");
    assert_eq!(run.task_of(owner, order).await.unwrap().attachments, recorded);
}

/// Anonymous requests to the task bucket are refused as S3 refuses them for a private bucket
/// (403 AccessDenied; the emulator in IAM enforce mode, iam.py): a PUT under `attachments/` and
/// under `logs/`, and a listing of every owner's keys. Nothing is stored.
async fn anonymous_requests_to_the_bucket_are_refused(run: &Run, owner: &str, order: &str) {
    // S3 is served by the local stack's storage process (`taskflow::local`).
    let endpoint = stack().storage_endpoint.as_deref().unwrap().trim_end_matches('/').to_string();
    let bucket = stack().output("TaskBucketName").unwrap();
    let prefix = taskflow_contracts::keys::attachments_prefix(&taskflow_contracts::OwnerId::parse(owner).unwrap());
    let key = format!("{prefix}{order}/a-{}", "c".repeat(32));
    let plain = vec![("content-type".to_string(), "text/plain".to_string())];
    for key in [key.as_str(), "logs/anonymous.txt"] {
        let (status, body) = send("PUT", &format!("{endpoint}/{bucket}/{key}"), &plain, b"hello").await;
        assert_eq!(status, 403, "{key}: {}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
        assert!(!object_exists(run, key).await, "{key} not stored");
    }
    let (status, body) = send("GET", &format!("{endpoint}/{bucket}?list-type=2&prefix=attachments/"), &[], b"").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(!String::from_utf8_lossy(&body).contains(&prefix), "no keys listed");
}

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n% the delivery note\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_attaches_lists_and_downloads_and_everything_else_is_refused() {
    let run = Run::new().await;
    let (queue, _rule) = subscribe(&run).await;
    let owner = format!("attach-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let order = order_id("att");
    run.submit(purchase(&order, &owner, &[("BOOK-1", 1, 1250)], "tok_approve")).await;
    run.events_until_terminal(&order).await;
    let token = token(&owner, 600);

    // 1. A good upload, through the presigned URL, with a plain HTTP client.
    let (status, answer) = ask(&token, &order, "delivery note.pdf", "application/pdf", PDF.len()).await;
    assert_eq!(status, 201, "{answer}");
    let upload = &answer["upload"];
    assert_eq!(upload["method"], "PUT");
    let url = upload["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("X-Amz-Expires=300"), "{url}");
    let key = key_of(upload);
    assert!(key.starts_with(&taskflow_contracts::keys::attachments_prefix(&taskflow_contracts::OwnerId::parse(&owner).unwrap())), "{key}");
    let (status, body) = send("PUT", url, &headers_of(upload), PDF).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list = until_recorded(&token, &order, 1).await;
    assert_eq!(list.len(), 1, "recorded on the task");
    let id = answer["attachmentId"].as_str().unwrap();
    assert_eq!((list[0]["id"].as_str(), list[0]["name"].as_str(), list[0]["size"].as_u64()), (Some(id), Some("delivery note.pdf"), Some(PDF.len() as u64)));
    assert_eq!(list[0]["contentType"], "application/pdf");
    assert!(list[0]["checksum"].as_str().unwrap().starts_with("sha256:") && list[0]["checksum"].as_str().unwrap().len() == 71);
    let task = run.task_of(&owner, &order).await.unwrap();
    assert_eq!(task.attachments.len(), 1);

    // The event, published through the outbox (the table's stream).
    let events = attachment_events(&run, &queue, 1, Duration::from_secs(30)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["eventId"], format!("{}@{id}", task.task_id));
    assert_eq!(events[0]["detail"]["owner"], owner.as_str());
    assert_eq!(events[0]["detail"]["attachment"]["name"], "delivery note.pdf");

    // The same S3 event delivered again (at least once): nothing more recorded or announced.
    let bucket = stack().output("TaskBucketName").unwrap();
    let again = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-29T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": PDF.len()}}}]});
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let attachments_queue = stack().output("AttachmentsQueueUrl").unwrap();
    sqs.send_message().queue_url(attachments_queue).message_body(again.to_string()).send().await.unwrap();

    // 2. The owner downloads it: the same bytes.
    let (status, read) = http("GET", &format!("/tasks/{order}/attachments/{id}"), Some(&token), None).await;
    assert_eq!(status, 200, "{read}");
    let download = read["download"]["url"].as_str().unwrap();
    let (status, bytes) = send("GET", download, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PDF, "the bytes uploaded");

    // The upload URL works once (boxed: the test's future stays within the test thread's stack).
    Box::pin(a_second_upload_to_the_url_is_refused(upload, &token, &order, id)).await;

    // The CLI does the same for its user: attach, list, download.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
            .args(args)
            .env("TASKFLOW_STATE_DIR", log_dir().parent().unwrap())
            .output()
            .expect("the taskflow binary runs (cargo build --workspace)");
        assert!(out.status.success(), "taskflow {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dir = std::env::temp_dir().join(format!("attach-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let note = dir.join("what happened.txt");
    std::fs::write(&note, "The box arrived crushed; photos to follow.\n").unwrap();
    let attached = cli(&["attach", &order, note.to_str().unwrap(), "--owner", &owner]);
    let cli_id = attached.split_whitespace().next().unwrap().to_string();
    assert!(taskflow_contracts::attachment::is_attachment_id(&cli_id), "{attached}");
    let listed = cli(&["attachments", &order, "--owner", &owner]);
    assert!(listed.contains(id) && listed.contains(&cli_id) && listed.contains("what happened.txt"), "{listed}");
    let copy = dir.join("copy.txt");
    cli(&["attachments", &order, "--owner", &owner, "--get", &cli_id, "--out", copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&note).unwrap());

    // 3. Refused at the API, before any URL: too large, a type not allowed, a bad name.
    for (name, content_type, size, error) in [
        ("big.pdf", "application/pdf", 10 * 1024 * 1024 + 1, "ATTACHMENT_TOO_LARGE"),
        ("tool.exe", "application/x-msdownload", 10, "UNSUPPORTED_CONTENT_TYPE"),
        ("../../etc/passwd", "text/plain", 10, "INVALID_ATTACHMENT_NAME"),
    ] {
        let (status, body) = ask(&token, &order, name, content_type, size).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{body}");
    }

    // 4. Refused by S3 (the emulator as S3): more bytes than signed, another content type, a
    //    tampered URL. Nothing stored, so nothing recorded.
    let (_, answer) = ask(&token, &order, "small.txt", "text/plain", 5).await;
    let upload = &answer["upload"];
    let url = upload["url"].as_str().unwrap();
    let big = vec![b'x'; 50];
    let (status, body) = send("PUT", url, &with(&headers_of(upload), "content-length", "50"), &big).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));
    let (status, body) = send("PUT", url, &with(&headers_of(upload), "content-type", "application/pdf"), b"hello").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=600");
    let (status, _) = send("PUT", &tampered, &headers_of(upload), b"hello").await;
    assert_eq!(status, 403);
    assert!(!object_exists(&run, &key_of(upload)).await, "nothing stored");

    Box::pin(anonymous_requests_to_the_bucket_are_refused(&run, &owner, &order)).await;

    // An expired URL: the SDK's presigned PUT of one second, used after it ran out.
    let s3 = aws_sdk_s3::Client::new(&run.aws);
    let expired_key = format!("{}{order}/a-{}", taskflow_contracts::keys::attachments_prefix(&taskflow_contracts::OwnerId::parse(&owner).unwrap()), "e".repeat(32));
    let presigned = s3
        .put_object()
        .bucket(bucket)
        .key(&expired_key)
        .content_type("text/plain")
        .content_length(5)
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    let headers: Vec<(String, String)> = presigned.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = send("PUT", presigned.uri(), &headers, b"hello").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Request has expired"));
    assert!(!object_exists(&run, &expired_key).await);

    // 5. Stored, then refused by the attachments function and deleted: bytes that are not the
    //    signed type (a program uploaded as a PNG).
    let exe = b"MZ\x90\x00\x03\x00\x00\x00 this is not a picture";
    let (status, answer) = ask(&token, &order, "photo.png", "image/png", exe.len()).await;
    assert_eq!(status, 201);
    let upload = &answer["upload"];
    let (status, _) = send("PUT", upload["url"].as_str().unwrap(), &headers_of(upload), exe).await;
    assert_eq!(status, 200, "S3 takes what was signed");
    let bad_key = key_of(upload);
    until_refused(&bad_key, "CONTENT_TYPE_MISMATCH").await;
    assert!(!object_exists(&run, &bad_key).await, "deleted");

    // 6. Another owner: 404 on every route, exactly as a task that does not exist; no URL.
    let other = taskflow_e2e::token("someone-else", 600);
    let (status, _) = ask(&other, &order, "x.pdf", "application/pdf", 10).await;
    assert_eq!(status, 404);
    let (status, _) = http("GET", &format!("/tasks/{order}/attachments"), Some(&other), None).await;
    assert_eq!(status, 404);
    let (status, _) = http("GET", &format!("/tasks/{order}/attachments/{id}"), Some(&other), None).await;
    assert_eq!(status, 404);
    let (status, _) = http("GET", &format!("/tasks/no-such-order/attachments"), Some(&token), None).await;
    assert_eq!(status, 404);

    // 7. A refund names the photo of its original order: accepted; one naming an attachment
    //    that is not on it: REJECTED UNKNOWN_ATTACHMENT.
    let refund_id = order_id("att-refund");
    let mut detail = refund(&refund_id, &owner, &order, Some(100));
    detail["attachments"] = json!([id]);
    run.submit(detail).await;
    let ended = run.events_until_terminal(&refund_id).await;
    assert_eq!(ended.last().unwrap().status, taskflow_contracts::TaskStatus::Completed, "{ended:?}");
    assert_eq!(run.task_of(&owner, &refund_id).await.unwrap().refund_attachments, vec![id.to_string()]);
    let bad_refund = order_id("att-refund");
    let mut detail = refund(&bad_refund, &owner, &order, Some(100));
    detail["attachments"] = json!([format!("a-{}", "9".repeat(32))]);
    run.submit(detail).await;
    let ended = run.events_until_terminal(&bad_refund).await;
    assert_eq!(ended.last().unwrap().reason.as_deref(), Some("UNKNOWN_ATTACHMENT"), "{ended:?}");

    // After all of it: exactly the two attachments, each announced once.
    assert_eq!(attachments(&token, &order).await.len(), 2);
    let later = attachment_events(&run, &queue, 2, Duration::from_secs(4)).await;
    assert_eq!(later.len(), 1, "the CLI's attachment: {later:?}");
    assert_eq!(later[0]["detail"]["attachment"]["id"], cli_id.as_str());
    let later = attachment_events(&run, &queue, 1, Duration::from_secs(2)).await;
    assert!(later.is_empty(), "nothing more announced: {later:?}");
    assert!(log_of("attachments").contains("already recorded"), "the duplicate event was seen and changed nothing");
    assert!(iam_denials().await.is_empty(), "{:?}", iam_denials().await);

    // The task store's one conditional write, on the emulator's DynamoDB: a full task, a
    // duplicate and another owner change nothing.
    use taskflow_shared::tasks::{AttachmentRecorded, DynamoTaskStore, TaskStore};
    let store = DynamoTaskStore::new(&run.aws, stack().output("TaskTableName").unwrap());
    let task = run.task_of(&owner, &order).await.unwrap();
    let extra = taskflow_contracts::Attachment { id: format!("a-{}", "f".repeat(32)), ..task.attachments[0].clone() };
    assert_eq!(store.add_attachment(&task.task_id, &owner, &extra, 2).await.unwrap(), AttachmentRecorded::Full);
    assert_eq!(store.add_attachment(&task.task_id, &owner, &task.attachments[0], 10).await.unwrap(), AttachmentRecorded::AlreadyThere);
    assert_eq!(store.add_attachment(&task.task_id, "someone-else", &extra, 10).await.unwrap(), AttachmentRecorded::Missing);
    assert_eq!(run.task_of(&owner, &order).await.unwrap().attachments, task.attachments);

    Box::pin(other_bytes_behind_a_recorded_attachment_are_deleted(&run, &owner, &order, &cli_id, &task.attachments)).await;
}
