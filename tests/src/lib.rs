//! The end-to-end fixture: one real local stack per test binary — a moto server process, the
//! template deployed on it, the function binaries running — shared by its tests, each of which
//! uses its own order ids. The stack runs on a thread of its own so that it outlives each test's
//! runtime; its processes die with the test process.
//!
//! Tests talk to it only as an outside client would: the AWS SDK against `StackInfo`.

pub mod fuzz;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use taskflow::local::{LocalStack, Options};
use taskflow::stack::StackInfo;

static STACK: OnceLock<StackInfo> = OnceLock::new();

/// Where this test process's stack keeps its state.
fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("taskflow-e2e-{}", std::process::id()))
}

/// Where this test process's stack keeps its state (its `stack.json`: `taskflow --state-dir`).
pub fn stack_state_dir() -> PathBuf {
    stack();
    state_dir()
}

/// The function and emulator logs of this test process's stack, one file each.
pub fn log_dir() -> PathBuf {
    state_dir().join("logs")
}

/// A bearer token for `owner` from the stack's token issuer, valid for `ttl` seconds (negative:
/// expired), as `taskflow token` makes it.
pub fn token(owner: &str, ttl: i64) -> String {
    stack();
    let issuer = taskflow::auth::Issuer::load(&state_dir().join(taskflow::local::TOKEN_ISSUER_FILE)).unwrap();
    issuer.token(owner, ttl).unwrap()
}

/// A bearer token for operator `name` (in the `operators` group), as `taskflow token --operator`
/// makes it.
pub fn operator_token(name: &str) -> String {
    stack();
    taskflow::operator::local_token(&state_dir(), name, 600).unwrap()
}

/// An HTTP exchange with the stack's HTTP API (loopback, HTTP/1.1): (status, JSON body).
pub async fn http(method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = stack().output("ApiUrl").unwrap().to_string();
    let host = url.strip_prefix("http://").unwrap().trim_end_matches('/').to_string();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // axum answers with a fixed length; decode a chunked body too, to be safe.
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(payload) } else { payload.to_string() };
    (status, serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)))
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
    out
}

/// The shared stack, started on first use.
pub fn stack() -> &'static StackInfo {
    stack_with(|_| {})
}

/// The shared stack, started on first use with `configure` applied to its options (fault
/// injection, template parameters); a later call gets the stack as first started.
pub fn stack_with(configure: impl FnOnce(&mut Options)) -> &'static StackInfo {
    STACK.get_or_init(|| {
        let state_dir = state_dir();
        let mut options = Options::new(&state_dir);
        configure(&mut options);
        // Tests run from the test binary in target/*/deps; the functions are built beside it.
        for binary in ["intake", "purchase", "refund", "notification", "publisher", "api", "attachments", "approvals", "sweeper"] {
            assert!(
                options.bin_dir.join(binary).is_file(),
                "function binary {binary} missing in {}: run `cargo build --workspace` first (make test does)",
                options.bin_dir.display()
            );
        }
        options.extra_env.insert("RETRY_BASE_DELAY_SECONDS".into(), "1".into());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("local-stack".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on(async move {
                    match LocalStack::start(options).await {
                        Ok(stack) => {
                            eprintln!("local stack up in {:.1} s; logs in {}", stack.started_in.as_secs_f64(), state_dir.join("logs").display());
                            tx.send(Ok(stack.info.clone())).unwrap();
                            std::future::pending::<()>().await;
                        }
                        Err(e) => tx.send(Err(format!("{e:#}"))).unwrap(),
                    }
                })
            })
            .unwrap();
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => panic!("the local stack did not start: {e}"),
            Err(_) => panic!("the local stack did not start within 120 s"),
        }
    })
}

/// Runs the sweeper now (the local host's schedule control, as `taskflow sweep` does) and
/// returns its report (`lookedAt`, `finished`, `handedToOperators`, `leftAlone`, `tasks`).
pub async fn sweep_now() -> serde_json::Value {
    taskflow::operations::sweep_now(stack()).await.expect("the sweeper ran")
}

/// Publishes an `OrderCancelled` for `owner`'s order, as an outside producer would.
pub async fn cancel_event(owner: &str, order_id: &str) {
    taskflow::operations::request_cancel(stack(), owner, order_id).await.expect("the bus took the cancel")
}

/// A fresh order id per test and run.
pub fn order_id(label: &str) -> String {
    format!("e2e-{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The repository's `contracts/examples`.
pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples").join(name)
}

/// An example PutEvents entry with its detail's `orderId` (and anything else) changed.
pub fn example_entry(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    let entries: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
    let entry = &entries[0];
    let mut detail: serde_json::Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
    edit(&mut detail);
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(entry["Source"].as_str().unwrap())
        .detail_type(entry["DetailType"].as_str().unwrap())
        .event_bus_name(stack().output("EventBusName").unwrap())
        .detail(detail.to_string())
        .build()
}

/// Publishes entries as an outside producer would, failing on any refused entry.
pub async fn publish(aws: &aws_config::SdkConfig, entry: aws_sdk_eventbridge::types::PutEventsRequestEntry) {
    let out = aws_sdk_eventbridge::Client::new(aws).put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0, "{:?}", out.entries);
}

use taskflow::client::StatusFeed;
use taskflow_contracts::TaskStatusChanged;
use taskflow_shared::catalogue::CatalogueEntry;
use taskflow_shared::ledger::{DynamoLedger, Ledger, LedgerEntry};
use taskflow_shared::tasks::{DynamoTaskStore, TaskRecord, TaskStore};

pub const WAIT: Duration = Duration::from_secs(60);

/// One test's view of the stack: an SDK config and its own status subscription.
pub struct Run {
    pub aws: aws_config::SdkConfig,
    pub feed: StatusFeed,
}

impl Run {
    pub async fn new() -> Run {
        let info = stack();
        Run { aws: info.sdk_config().await, feed: StatusFeed::open(info).await.unwrap() }
    }

    /// Publishes a raw `OrderSubmitted` detail as an outside producer would.
    pub async fn submit(&self, detail: serde_json::Value) {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("taskflow.orders")
            .detail_type("OrderSubmitted")
            .event_bus_name(stack().output("EventBusName").unwrap())
            .detail(detail.to_string())
            .build();
        publish(&self.aws, entry).await;
    }

    pub async fn events_until_terminal(&self, order_id: &str) -> Vec<TaskStatusChanged> {
        self.all_until_terminal(&[order_id.to_string()]).await.remove(order_id).unwrap()
    }

    pub async fn all_until_terminal(&self, order_ids: &[String]) -> std::collections::HashMap<String, Vec<TaskStatusChanged>> {
        let all = self.feed.collect_until_terminal(order_ids, WAIT).await.unwrap();
        for (id, events) in &all {
            assert!(events.last().is_some_and(|e| e.status.is_terminal()), "{id} did not end within {WAIT:?}: {events:?}");
        }
        all
    }

    fn tasks(&self) -> DynamoTaskStore {
        DynamoTaskStore::new(&self.aws, stack().output("TaskTableName").unwrap())
    }

    /// The one task with this order id (tests give every order its own id; order ids are per
    /// owner, so this panics if several owners used it: then use [`Run::task_of`]).
    pub async fn task(&self, order_id: &str) -> TaskRecord {
        self.try_task(order_id).await.expect("the task is recorded")
    }

    /// The one task with this order id, if it is recorded yet.
    pub async fn try_task(&self, order_id: &str) -> Option<TaskRecord> {
        let mut found = self.tasks().find_by_order_id(order_id).await.unwrap();
        assert!(found.len() <= 1, "{} tasks have order id {order_id}: use task_of(owner, id)", found.len());
        found.pop()
    }

    /// The ARN of `task`'s execution, derived from the stack's workflows and its task id (the
    /// intake does not note it on the task); `None` for a task no workflow was started for.
    pub fn execution_of(&self, task: &TaskRecord) -> Option<String> {
        stack().workflows().unwrap().execution_of(task)
    }

    /// `owner`'s task of `order_id`, read by its task id (what the services do).
    pub async fn task_of(&self, owner: &str, order_id: &str) -> Option<TaskRecord> {
        self.tasks().get(&taskflow_contracts::keys::task_id(owner, order_id)).await.unwrap()
    }

    /// Every task with this order id, whoever owns it.
    pub async fn tasks_with_order_id(&self, order_id: &str) -> Vec<TaskRecord> {
        self.tasks().find_by_order_id(order_id).await.unwrap()
    }

    /// Notices sent, per `outbox/{owner}/{order}/{STATUS}` (one object per send).
    pub async fn outbox_counts(&self) -> std::collections::HashMap<String, usize> {
        let s3 = aws_sdk_s3::Client::new(&self.aws);
        let mut counts = std::collections::HashMap::new();
        let mut token = None;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(stack().output("TaskBucketName").unwrap())
                .prefix("outbox/")
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for key in out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key) {
                let status = key.rsplit_once('-').map_or(key.as_str(), |(head, _)| head).to_string();
                *counts.entry(status).or_insert(0) += 1;
            }
            token = out.next_continuation_token;
            if token.is_none() {
                return counts;
            }
        }
    }

    /// The ledger entry of the one task with this order id (see [`Run::task`]).
    pub async fn ledger(&self, order_id: &str) -> Option<LedgerEntry> {
        let task = self.try_task(order_id).await?;
        self.ledger_of(&task.owner, order_id).await
    }

    /// The ledger entry of `owner`'s order `order_id`.
    pub async fn ledger_of(&self, owner: &str, order_id: &str) -> Option<LedgerEntry> {
        let key = taskflow_contracts::keys::task_id(owner, order_id);
        DynamoLedger::new(&self.aws, stack().output("LedgerTableName").unwrap()).get(&key).await.unwrap()
    }

    /// Every object key under `prefix` in the task bucket.
    pub async fn objects(&self, prefix: &str) -> Vec<String> {
        let s3 = aws_sdk_s3::Client::new(&self.aws);
        let (mut keys, mut token) = (Vec::new(), None);
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(stack().output("TaskBucketName").unwrap())
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
            token = out.next_continuation_token;
            if token.is_none() {
                return keys;
            }
        }
    }

    /// Adds a sku of this test's own, so its stock figures are not shared with other tests: in the
    /// catalogue (active, at `unit_price` minor units in EUR) as an operator would load it, and
    /// with `available` in stock.
    pub async fn new_sku(&self, label: &str, available: u64, unit_price: u64) -> String {
        let sku = format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();
        self.put_catalogue(CatalogueEntry { sku: sku.clone(), name: format!("{label} (test)"), unit_price, currency: "EUR".into(), active: true, stock_shards: 1 }).await;
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(stack().output("InventoryTableName").unwrap())
            .item("sku", aws_sdk_dynamodb::types::AttributeValue::S(sku.clone()))
            .item("available", aws_sdk_dynamodb::types::AttributeValue::N(available.to_string()))
            .send()
            .await
            .unwrap();
        sku
    }

    /// Adds or replaces a catalogue entry (as `taskflow catalogue load` does).
    pub async fn put_catalogue(&self, entry: CatalogueEntry) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(stack().output("CatalogueTableName").unwrap())
            .set_item(Some(taskflow_shared::catalogue::encode(&entry)))
            .send()
            .await
            .unwrap();
    }

    /// Units of `sku` in stock, over all its shards (strongly consistent reads).
    pub async fn available(&self, sku: &str) -> u64 {
        self.levels(sku).await.iter().sum()
    }

    /// The level of each stock shard of `sku` (shard 0's `shards` says how many; a missing
    /// shard item reads 0), strongly consistent.
    pub async fn levels(&self, sku: &str) -> Vec<u64> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.aws);
        let read = |shard: u32| {
            let dynamodb = dynamodb.clone();
            async move {
                dynamodb
                    .get_item()
                    .table_name(stack().output("InventoryTableName").unwrap())
                    .key("sku", aws_sdk_dynamodb::types::AttributeValue::S(taskflow_contracts::keys::stock_key(sku, shard)))
                    .consistent_read(true)
                    .send()
                    .await
                    .unwrap()
                    .item
            }
        };
        let first = read(0).await.expect("sku exists");
        let shards: u32 = first.get("shards").map_or(1, |n| n.as_n().unwrap().parse().unwrap());
        let level = |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| -> u64 { item["available"].as_n().unwrap().parse().unwrap() };
        let mut levels = vec![level(&first)];
        for shard in 1..shards {
            levels.push(read(shard).await.as_ref().map_or(0, level));
        }
        levels
    }

    /// Like [`Run::new_sku`], with its stock split over `shards` items as `taskflow catalogue
    /// load --stock` splits it (`stockShards` in the catalogue).
    pub async fn new_sharded_sku(&self, label: &str, available: u64, shards: u32, unit_price: u64) -> String {
        let sku = format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();
        self.put_catalogue(CatalogueEntry { sku: sku.clone(), name: format!("{label} (test)"), unit_price, currency: "EUR".into(), active: true, stock_shards: shards })
            .await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.aws);
        taskflow_shared::inventory::load_stock(&dynamodb, stack().output("InventoryTableName").unwrap(), &sku, available, shards).await.unwrap();
        sku
    }

    /// What the payment provider did for an order: (charges, charged, refunds, refunded).
    pub async fn provider(&self, order_id: &str) -> (usize, u64, usize, u64) {
        let items = aws_sdk_dynamodb::Client::new(&self.aws)
            .scan()
            .table_name(stack().output("SandboxChargesTableName").unwrap())
            .filter_expression("orderId = :id AND attribute_exists(id)")
            .expression_attribute_values(":id", aws_sdk_dynamodb::types::AttributeValue::S(order_id.into()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        let mut figures = (0, 0, 0, 0);
        for item in items {
            let amount: u64 = item["amount"].as_n().unwrap().parse().unwrap();
            match item["kind"].as_s().unwrap().as_str() {
                "charge" => (figures.0, figures.1) = (figures.0 + 1, figures.1 + amount),
                _ => (figures.2, figures.3) = (figures.2 + 1, figures.3 + amount),
            }
        }
        figures
    }

    /// The ledger and the payment provider agree on an order's money, and the ledger adds up.
    pub async fn assert_balanced(&self, order_id: &str) {
        let (charges, charged, _, refunded) = self.provider(order_id).await;
        match self.ledger(order_id).await {
            Some(entry) => {
                assert_eq!(charges, 1, "{order_id}: one charge");
                assert_eq!((entry.charged, entry.refunded), (charged, refunded), "{order_id}: ledger = provider");
                assert_eq!(entry.refunds.values().sum::<u64>(), entry.refunded, "{order_id}: refunds add up");
                assert!(entry.refunded <= entry.charged, "{order_id}: never more back than was charged");
            }
            None => assert_eq!((charges, refunded), (0, 0), "{order_id}: no ledger entry, no money moved"),
        }
    }

    /// The notices sent to `owner` about `order_id` (one object per send), under the owner's
    /// prefix (`keys::outbox_prefix`).
    pub async fn outbox(&self, owner: &str, order_id: &str) -> Vec<String> {
        let owner = taskflow_contracts::OwnerId::parse(owner).expect("a valid owner");
        aws_sdk_s3::Client::new(&self.aws)
            .list_objects_v2()
            .bucket(stack().output("TaskBucketName").unwrap())
            .prefix(format!("{}{order_id}/", taskflow_contracts::keys::outbox_prefix(&owner)))
            .send()
            .await
            .unwrap()
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect()
    }

    pub async fn close(self) {
        self.feed.close().await;
    }
}

/// A purchase detail; each line (sku, quantity, unitPrice) states its price (it must be the
/// catalogue's, or the order is REJECTED `PRICE_MISMATCH`).
pub fn purchase(order_id: &str, owner: &str, items: &[(&str, u32, u64)], token: &str) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 1, "orderId": order_id, "owner": owner, "kind": "purchase", "currency": "EUR",
        "items": items.iter().map(|(sku, q, p)| serde_json::json!({"sku": sku, "quantity": q, "unitPrice": p})).collect::<Vec<_>>(),
        "paymentToken": token,
    })
}

pub fn refund(order_id: &str, owner: &str, of: &str, amount: Option<u64>) -> serde_json::Value {
    let mut detail = serde_json::json!({"schemaVersion": 1, "orderId": order_id, "owner": owner, "kind": "refund", "currency": "EUR", "refundOf": of});
    if let Some(amount) = amount {
        detail["amount"] = amount.into();
    }
    detail
}

pub fn statuses(events: &[TaskStatusChanged]) -> Vec<taskflow_contracts::TaskStatus> {
    events.iter().map(|e| e.status).collect()
}

/// The standard AWS environment that points a process (the aws CLI, `taskflow --stack NAME`)
/// at the shared local stack, found as a deployed stack is: `AWS_ENDPOINT_URL`, the
/// service-specific `AWS_ENDPOINT_URL_DYNAMODB`, `_DYNAMODB_STREAMS` and `_S3` (the second
/// emulator process, see `taskflow::local`), the region and dummy credentials.
pub fn aws_env() -> Vec<(&'static str, String)> {
    let info = stack();
    let endpoint = info.endpoint.clone().expect("a local stack has an endpoint");
    let storage = info.storage_endpoint.clone().unwrap_or_else(|| endpoint.clone());
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ENDPOINT_URL_DYNAMODB", storage.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", storage.clone()),
        ("AWS_ENDPOINT_URL_S3", storage),
        ("AWS_REGION", info.region.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ]
}

/// The emulator's IAM denial log (`infra/local/iam.py`): every call a function's (or workflow's)
/// role did not allow, oldest first, each with `function`, `principal`, `action`, `resource`.
pub async fn iam_denials() -> Vec<serde_json::Value> {
    taskflow::local::iam_denials(stack(), false).await.unwrap()
}
