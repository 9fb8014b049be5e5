//! An in-repo fuzz harness (cargo-fuzz needs a nightly toolchain, which this project does not
//! assume): seeds from `contracts/examples`, sample Lambda events and HTTP API request bodies,
//! mutated at the byte and the JSON level by a seeded generator, fed to every contract decoder
//! and every inbound handler (intake, the task-token driver, the publisher, the HTTP API's
//! routes) with in-memory ports. The property: nothing panics, and every handler answers in its
//! contract (a named error, a batch item failure, a rejection, a 4xx with a named error) — never
//! a crash that would lose the batch, nor an order submitted in someone else's name.

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::Mutex;
use taskflow_contracts::*;
use taskflow_shared::driver::{Attempt, Driver, Redelivery, RetryPolicy, StepError, TaskWorker};
use taskflow_shared::fakes::{InMemoryTaskStore, RecordingCallback};

/// The local stack's catalogue (`infra/local/catalogue.json`), so mutated example orders are
/// priced, refused for their price or for an unknown sku, as on the stack.
pub fn local_catalogue() -> Vec<taskflow_shared::catalogue::CatalogueEntry> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/catalogue.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The inputs mutations start from.
pub fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples");
    let mut seeds = Vec::new();
    for sub in [dir.clone(), dir.join("messages")] {
        for entry in std::fs::read_dir(sub).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                // PutEvents entries: their Detail, wrapped as a rule delivers it.
                if let Ok(entries) = serde_json::from_str::<Vec<Value>>(&text) {
                    for e in entries {
                        let detail: Value = serde_json::from_str(e["Detail"].as_str().unwrap_or("{}")).unwrap_or_default();
                        seeds.push(json!({"version": "0", "id": "1", "detail-type": e["DetailType"], "source": e["Source"], "detail": detail}).to_string().into_bytes());
                        seeds.push(detail.to_string().into_bytes());
                    }
                } else {
                    seeds.push(text.into_bytes());
                }
            }
        }
    }
    seeds.extend(api_seeds());
    seeds
}

/// HTTP API request bodies (`POST /orders`) and path values (`GET /tasks/{orderId}`) as clients
/// send them: minimal, complete, naming the owner, too large, not JSON.
fn api_seeds() -> Vec<Vec<u8>> {
    let lines: Vec<Value> = (0..1400).map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1, "unitPrice": 100})).collect();
    vec![
        json!({"kind": "purchase", "currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 2}], "paymentToken": "tok_approve"}),
        json!({"orderId": "cart-42", "kind": "purchase", "currency": "EUR", "items": [{"sku": "LAMP-1", "quantity": 3, "unitPrice": 1}], "paymentToken": "tok_approve"}),
        json!({"orderId": "r-1", "owner": "alice", "kind": "refund", "currency": "EUR", "refundOf": "cart-42", "amount": 500}),
        json!({"owner": "mallory", "kind": "purchase", "currency": "EUR", "items": []}),
        json!({"kind": "purchase", "currency": "EUR", "items": lines, "paymentToken": "tok_approve"}),
    ]
    .into_iter()
    .map(|v| v.to_string().into_bytes())
    .chain([b"taken".to_vec(), b"../admin".to_vec(), b"".to_vec(), b"[]".to_vec()])
    .collect()
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(u64::MAX),
        4 => json!(rng.random::<f64>() * 1e6),
        5 => json!("x".repeat(rng.random_range(0..300))),
        6 => json!(["", "EUR", "purchase", "refund", "tok_approve", "COMPLETED", "\u{0}", "ø"][rng.random_range(0..8)]),
        7 if depth < 3 => Value::Array((0..rng.random_range(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ if depth < 3 => Value::Object((0..rng.random_range(0..4)).map(|i| (format!("k{i}"), random_value(rng, depth + 1))).collect()),
        _ => json!(""),
    }
}

/// Replaces, removes or adds one node somewhere in the document.
fn mutate_json(value: &mut Value, rng: &mut StdRng) {
    match value {
        Value::Object(map) if !map.is_empty() && rng.random_bool(0.7) => {
            let key = map.keys().nth(rng.random_range(0..map.len())).unwrap().clone();
            match rng.random_range(0..4) {
                0 => { map.remove(&key); }
                1 => { map.insert(key, random_value(rng, 0)); }
                _ => mutate_json(map.get_mut(&key).unwrap(), rng),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.random_bool(0.7) => {
            let i = rng.random_range(0..items.len());
            mutate_json(&mut items[i], rng);
        }
        other => *other = random_value(rng, 0),
    }
}

/// One mutated input.
pub fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    if rng.random_bool(0.6) {
        if let Ok(mut value) = serde_json::from_slice::<Value>(seed) {
            for _ in 0..rng.random_range(1..4) {
                mutate_json(&mut value, rng);
            }
            return value.to_string().into_bytes();
        }
    }
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..5) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => { bytes.truncate(at); }
            2 => bytes.insert(at, rng.random()),
            _ => { let end = (at + rng.random_range(1..16)).min(bytes.len()); bytes.drain(at..end); }
        }
    }
    bytes
}

struct Workflows(Mutex<Vec<String>>);

#[async_trait]
impl taskflow_intake::Workflows for Workflows {
    async fn start(&self, _kind: taskflow_contracts::OrderKind, name: &str, _input: &str, _trace_header: Option<&str>) -> Result<taskflow_intake::Started, taskflow_intake::WorkflowError> {
        let mut started = self.0.lock().unwrap();
        if started.iter().any(|n| n == name) {
            return Ok(taskflow_intake::Started::Existing(name.into()));
        }
        started.push(name.into());
        Ok(taskflow_intake::Started::New(name.into()))
    }
}

struct Echo;

#[async_trait]
impl TaskWorker for Echo {
    type Work = NotificationWork;
    type Output = String;
    async fn perform(&self, work: &NotificationWork, _attempt: Attempt) -> Result<String, StepError> {
        Ok(work.order_id.clone())
    }
}

struct NoDelay;

#[async_trait]
impl Redelivery for NoDelay {
    async fn delay(&self, _receipt: &str, _seconds: u32) -> Result<(), String> {
        Ok(())
    }
}

struct NullBus;

#[async_trait]
impl taskflow_publisher::bus::EventBus for NullBus {
    async fn publish(&self, _events: &[TaskStatusChanged]) -> Result<(), taskflow_publisher::bus::PublishError> {
        Ok(())
    }
}

/// A dead-letter queue that takes every note.
#[derive(Default)]
struct NullDeadLetters(Mutex<usize>);

#[async_trait]
impl taskflow_publisher::dead::DeadLetters for NullDeadLetters {
    async fn set_aside(&self, _change: &taskflow_publisher::dead::UnpublishedChange) -> Result<(), taskflow_publisher::dead::DeadLetterError> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

/// An order bus that records what the API submits.
#[derive(Default)]
struct RecordedOrders(Mutex<Vec<Value>>);

#[async_trait]
impl taskflow_api::OrderBus for RecordedOrders {
    async fn submit(&self, detail: &Value) -> Result<(), taskflow_api::BusError> {
        self.0.lock().unwrap().push(detail.clone());
        Ok(())
    }
}

/// The callers the API is tried as (token subjects: a Cognito `sub`, an email, unicode).
const CALLERS: [&str; 3] = ["alice", "bob+orders@example.com", "Zoë"];

/// An API answer is in its contract: a client error or success (the fake ports never fail), a
/// JSON object, and a named error with a message when it is not a success.
fn assert_answer(answer: &taskflow_api::Answer, what: &str) {
    assert!((200..500).contains(&answer.status), "{what}: {} {}", answer.status, answer.body);
    assert!(answer.body.is_object(), "{what}: {}", answer.body);
    if answer.status >= 400 {
        assert!(answer.body["error"].is_string() && answer.body["message"].is_string(), "{what}: unnamed error {}", answer.body);
    }
}

/// The HTTP API's routes with `text` as the request body and as the path's order id.
async fn exercise_api(text: &str) {
    let other = taskflow_shared::tasks::TaskRecord::new("taken", "mallory", TaskStatus::Received, None, chrono::Utc::now());
    let api = taskflow_api::Api { tasks: InMemoryTaskStore::with([other]), bus: RecordedOrders::default(), logs: taskflow_shared::tasklog::InMemoryTaskLogs::default() };
    for caller in CALLERS {
        // POST /orders: a 202 submits exactly one order, in the caller's name and under the id it
        // answers with; anything else submits nothing.
        let answer = api.handle(taskflow_api::Route::SubmitOrder, caller, Some(text)).await;
        assert_answer(&answer, &format!("POST /orders as {caller}: {text}"));
        let sent = std::mem::take(&mut *api.bus.0.lock().unwrap());
        if answer.status == 202 {
            assert_eq!(sent.len(), 1, "{text}");
            assert_eq!(sent[0]["owner"], caller, "submitted in someone else's name: {text}");
            assert_eq!(sent[0]["orderId"], answer.body["orderId"], "{text}");
        } else {
            assert!(sent.is_empty(), "refused ({}) but submitted: {text}", answer.status);
        }
        // GET /tasks/{orderId}: another owner's task is never shown.
        let answer = api.handle(taskflow_api::Route::ReadTask(text.to_string()), caller, None).await;
        assert_answer(&answer, &format!("GET /tasks/{text} as {caller}"));
        if answer.status == 200 {
            assert_eq!(answer.body["owner"], caller, "{text}: {}", answer.body);
        }
    }
}

type FuzzOperators = taskflow_api::operators::Operators<InMemoryTaskStore, taskflow_shared::approvals::InMemoryApprovalStore, RecordingCallback>;

/// One refund waiting for approval, its token recorded, shared by every input of a run: the
/// first decision that passes every check is the only one ever answered to the workflow.
fn fuzz_operators() -> &'static FuzzOperators {
    static OPERATORS: std::sync::OnceLock<FuzzOperators> = std::sync::OnceLock::new();
    OPERATORS.get_or_init(|| {
        let waiting = {
            let mut task = taskflow_shared::tasks::TaskRecord::new("r-1", "alice", TaskStatus::Received, None, chrono::Utc::now());
            taskflow_shared::tasks::Change::to(TaskStatus::AwaitingApproval, chrono::Utc::now()).apply(&mut task);
            task
        };
        let approvals = taskflow_shared::approvals::InMemoryApprovalStore::default();
        approvals.records.lock().unwrap().insert(
            waiting.task_id.clone(),
            taskflow_shared::approvals::PendingApproval {
                task_id: waiting.task_id.clone(),
                order_id: "r-1".into(),
                owner: "alice".into(),
                amount: 20_000,
                currency: "EUR".into(),
                requested_at: chrono::Utc::now(),
                deadline: chrono::Utc::now() + chrono::Duration::hours(1),
                round: 1,
                state: taskflow_shared::approvals::ApprovalState::Pending,
                task_token: taskflow_contracts::TaskToken::new("tok-fuzz"),
                decision: None,
                delivered: false,
            },
        );
        taskflow_api::operators::Operators { tasks: InMemoryTaskStore::with([waiting]), approvals, callback: RecordingCallback::default() }
    })
}

/// The operators' routes with `text` as a decision's body, as the order id decided on, and as
/// a query's `since` and `next`: every answer is in the contract; a caller outside the operators group
/// gets 403 and nothing is answered to the workflow; a refused decision answers nothing.
async fn exercise_operators(text: &str) {
    use taskflow_api::operators::OperatorRoute;
    use taskflow_contracts::Decision;
    let operators = fuzz_operators();
    let ops = vec!["operators".to_string()];
    for (groups, route, body) in [
        (&ops[..], OperatorRoute::Decide("r-1".into(), Decision::Denied), Some(text)),
        (&[][..], OperatorRoute::Decide("r-1".into(), Decision::Approved), Some(text)),
        (&ops[..], OperatorRoute::Decide(text.to_string(), Decision::Approved), Some(r#"{"owner":"alice","reason":"fuzz"}"#)),
    ] {
        {
            let before = operators.callback.answers().len();
            let answer = operators.handle(route, "olga", groups, &serde_json::json!({}), body).await;
            assert_answer(&answer, &format!("decision in {groups:?}: {text}"));
            if groups.is_empty() {
                assert_eq!(answer.status, 403, "{text}");
            }
            if !(200..300).contains(&answer.status) {
                assert_eq!(operators.callback.answers().len(), before, "refused ({}) but answered: {text}", answer.status);
            }
            assert!(operators.callback.answers().len() <= 1, "the workflow was answered twice: {text}");
        }
    }
    for name in ["since", "next"] {
        let mut query = serde_json::json!({"status": "FAILED", "since": "1h"});
        query[name] = serde_json::Value::from(text);
        let answer = operators.handle(OperatorRoute::QueryTasks, "olga", &ops, &query, None).await;
        assert_answer(&answer, &format!("GET /tasks?{name}={text}"));
    }
}

/// Feeds `input` to every decoder and handler; panics only if a property breaks.
pub async fn exercise(input: &[u8]) {
    // Contract decoders.
    let _ = serde_json::from_slice::<OrderSubmitted>(input);
    let _ = serde_json::from_slice::<TaskStatusChanged>(input);
    let _ = serde_json::from_slice::<EventEnvelope<TaskStatusChanged>>(input);
    let _ = serde_json::from_slice::<PurchaseWork>(input);
    let _ = serde_json::from_slice::<RefundWork>(input);
    let _ = serde_json::from_slice::<NotificationWork>(input);
    let _ = serde_json::from_slice::<PurchaseResult>(input);
    let _ = serde_json::from_slice::<RefundResult>(input);
    let _ = serde_json::from_slice::<NotificationResult>(input);
    if let Ok(value) = serde_json::from_slice::<Value>(input) {
        let _ = taskflow_contracts::v2::read_status_event(&value);
    }
    let text = String::from_utf8_lossy(input);

    // Intake: an order is started, rejected, a duplicate, or a named NotAnOrder.
    let intake = taskflow_intake::Intake {
        tasks: InMemoryTaskStore::default(),
        workflows: Workflows(Mutex::new(vec![])),
        catalogue: taskflow_shared::fakes::InMemoryCatalogue::with(local_catalogue()),
    };
    match intake.accept(&text, chrono::Utc::now()).await {
        Ok(_) | Err(taskflow_intake::IntakeError::NotAnOrder(_)) => {}
        Err(e) => panic!("intake failed on a fake store: {e}"),
    }

    // The task-token driver: every message is answered, done, or reported — never dropped.
    let driver = Driver {
        name: "test",
        worker: Echo,
        callback: RecordingCallback::default(),
        redelivery: NoDelay,
        policy: RetryPolicy { max_attempts: 3, base_delay_secs: 1, max_delay_secs: 4 },
        heartbeat_every: std::time::Duration::from_secs(60),
    };
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("m1".into());
    message.body = Some(text.to_string());
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![message];
    let response = driver.handle_batch(event).await;
    let answered = !driver.callback.answers().is_empty();
    let reported = response.batch_item_failures.iter().any(|f| f.item_identifier == "m1");
    assert!(answered || reported, "a message was neither answered nor reported: {text}");

    // The HTTP API, with the input as a request body and an order id.
    exercise_api(&text).await;
    exercise_operators(&text).await;
    let _ = serde_json::from_slice::<taskflow_contracts::ApprovalWork>(input);

    // The publisher, when the input reads as a stream event: with a bus and a dead-letter queue
    // that work, every record is published, skipped or set aside — none is left failed.
    if let Ok(stream) = serde_json::from_slice::<aws_lambda_events::event::dynamodb::Event>(input) {
        let publisher = taskflow_publisher::Publisher { bus: NullBus, dead_letters: NullDeadLetters::default(), logs: taskflow_shared::tasklog::InMemoryTaskLogs::default(), workflows: None };
        if let Ok(relayed) = publisher.relay(&stream).await {
            assert!(relayed.response.batch_item_failures.is_empty(), "a record failed with working ports: {text}");
        }
    }
}

/// Runs `iterations` mutated inputs from seed `seed`; returns how many ran.
pub async fn run(seed: u64, iterations: usize) -> usize {
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..iterations {
        let input = mutate(&seeds[i % seeds.len()], &mut rng);
        exercise(&input).await;
    }
    iterations
}
