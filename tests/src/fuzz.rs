//! An in-repo fuzz harness (cargo-fuzz needs a nightly toolchain, which this project does not
//! assume): seeds from `contracts/examples` and sample Lambda events, mutated at the byte and the
//! JSON level by a seeded generator, fed to every contract decoder and every inbound Lambda
//! event handler (intake, the task-token driver, the publisher) with in-memory ports. The
//! property: nothing panics, and every handler answers in its contract (a named error, a batch
//! item failure, a rejection) — never a crash that would lose the batch.

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::Mutex;
use taskflow_contracts::*;
use taskflow_shared::driver::{Attempt, Driver, Redelivery, RetryPolicy, StepError, TaskWorker};
use taskflow_shared::fakes::{InMemoryTaskStore, RecordingCallback};

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
    seeds
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
    let intake = taskflow_intake::Intake { tasks: InMemoryTaskStore::default(), workflows: Workflows(Mutex::new(vec![])) };
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

    // The publisher, when the input reads as a stream event: with a bus and a dead-letter queue
    // that work, every record is published, skipped or set aside — none is left failed.
    if let Ok(stream) = serde_json::from_slice::<aws_lambda_events::event::dynamodb::Event>(input) {
        let publisher = taskflow_publisher::Publisher { bus: NullBus, dead_letters: NullDeadLetters::default() };
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
