use super::*;
use crate::fakes::{Answer, RecordingCallback};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use taskflow_contracts::{NotificationWork, OrderKind, Outcome};

/// A worker whose answers are scripted, counting how often it ran.
struct Scripted {
    results: Mutex<Vec<Result<String, StepError>>>,
    runs: AtomicU32,
}

impl Scripted {
    fn new(results: Vec<Result<String, StepError>>) -> Self {
        Scripted { results: Mutex::new(results), runs: AtomicU32::new(0) }
    }
}

#[async_trait]
impl TaskWorker for Scripted {
    type Work = NotificationWork;
    type Output = String;
    async fn perform(&self, _work: &NotificationWork, _attempt: Attempt) -> Result<String, StepError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.results.lock().unwrap().remove(0)
    }
}

#[derive(Default)]
struct Delays(Mutex<Vec<(String, u32)>>);

#[async_trait]
impl Redelivery for Delays {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), String> {
        self.0.lock().unwrap().push((receipt_handle.to_string(), seconds));
        Ok(())
    }
}

const POLICY: RetryPolicy = RetryPolicy { max_attempts: 3, base_delay_secs: 1, max_delay_secs: 8 };

fn driver(results: Vec<Result<String, StepError>>) -> Driver<Scripted, RecordingCallback, Delays> {
    Driver {
        name: "test",
        worker: Scripted::new(results),
        callback: RecordingCallback::default(),
        redelivery: Delays::default(),
        policy: POLICY,
        heartbeat_every: std::time::Duration::from_secs(60),
    }
}

fn work_body(token: &str) -> String {
    serde_json::to_string(&NotificationWork {
        schema_version: 1,
        task_token: TaskToken::new(token),
        order_id: "o-1".into(),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        outcome: Outcome::Completed,
        failure: None,
        trace_header: None,
    })
    .unwrap()
}

fn message(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(body.into());
    m.attributes.insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn success_answers_the_token_with_the_output() {
    let d = driver(vec![Ok("done".into())]);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(d.callback.answers(), vec![("t1".to_string(), Answer::Success("\"done\"".into()))]);
}

#[tokio::test]
async fn an_output_step_functions_would_refuse_fails_the_step_by_name() {
    // One byte over the task output limit (the quotes of the JSON string are two of them).
    let too_large = "x".repeat(taskflow_contracts::limits::SFN_PAYLOAD_MAX_BYTES - 1);
    let fits = "y".repeat(taskflow_contracts::limits::SFN_PAYLOAD_MAX_BYTES - 2);
    let d = driver(vec![Ok(too_large), Ok(fits.clone())]);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    let response2 = d.handle_batch(batch(vec![message("m2", &work_body("t2"), 1)])).await;
    assert!(failed_ids(&response).is_empty() && failed_ids(&response2).is_empty());
    let answers = d.callback.answers();
    assert!(
        matches!(&answers[0], (t, Answer::Failure { error, .. }) if t == "t1" && error == errors::OUTPUT_TOO_LARGE),
        "{:?}",
        answers[0].1
    );
    assert_eq!(answers[1], ("t2".to_string(), Answer::Success(format!("\"{fits}\""))));
}

#[tokio::test]
async fn final_failure_answers_with_its_error_name() {
    let d = driver(vec![Err(StepError::failed("PaymentDeclined", "card declined"))]);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        d.callback.answers(),
        vec![("t1".to_string(), Answer::Failure { error: "PaymentDeclined".into(), cause: "card declined".into() })]
    );
}

#[tokio::test]
async fn a_last_delivery_that_finds_its_step_in_progress_leaves_the_answer_to_the_holder() {
    // Attempt 3 of 3: another delivery is charging right now and will answer the token.
    let d = driver(vec![Err(StepError::retry(errors::STEP_IN_PROGRESS, "o-1/charge"))]);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), POLICY.max_attempts)])).await;
    assert_eq!(failed_ids(&response), vec!["m1"], "left on the queue (then its DLQ), not deleted");
    let answers = d.callback.answers();
    assert!(answers.iter().all(|(_, a)| *a == Answer::Heartbeat), "the token is not failed: {answers:?}");
}

#[tokio::test]
async fn transient_failure_is_redelivered_after_a_bounded_backoff_and_only_that_message() {
    let d = driver(vec![Err(StepError::retry("PaymentUnavailable", "503")), Ok("ok".into())]);
    let response = d
        .handle_batch(batch(vec![message("m1", &work_body("t1"), 1), message("m2", &work_body("t2"), 1)]))
        .await;
    assert_eq!(failed_ids(&response), vec!["m1"]);
    assert_eq!(d.callback.answers(), vec![("t2".to_string(), Answer::Success("\"ok\"".into()))]);
    let delays = d.redelivery.0.lock().unwrap().clone();
    assert_eq!(delays.len(), 1);
    assert_eq!(delays[0].0, "rh-m1");
    assert!((1..=1).contains(&delays[0].1), "first retry waits about the base delay, got {}", delays[0].1);
}

#[tokio::test]
async fn transient_failure_on_the_last_delivery_fails_the_step_instead_of_hanging() {
    let d = driver(vec![Err(StepError::retry("PaymentUnavailable", "503"))]);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 3)])).await;
    assert!(failed_ids(&response).is_empty());
    let answers = d.callback.answers();
    assert_eq!(answers[0].1, Answer::Heartbeat);
    assert_eq!(answers[1].1, Answer::Failure { error: "PaymentUnavailable".into(), cause: "503".into() });
}

#[tokio::test]
async fn a_spent_token_makes_the_message_final() {
    let d = driver(vec![Ok("first".into()), Ok("again".into())]);
    d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    // The same message delivered again (at-least-once) with the same receive count.
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    assert!(failed_ids(&response).is_empty(), "a spent token must not keep the message alive");
    assert_eq!(d.callback.answers().len(), 1);
}

#[tokio::test]
async fn a_redelivery_of_a_finished_step_is_dropped_without_redoing_the_work() {
    let d = driver(vec![Ok("first".into())]);
    d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 2)])).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(d.worker.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_message_without_a_token_stays_for_the_dead_letter_queue() {
    let d = driver(vec![]);
    let response = d
        .handle_batch(batch(vec![message("m1", "not json", 1), message("m2", r#"{"orderId":"o-1"}"#, 1)]))
        .await;
    assert_eq!(failed_ids(&response), vec!["m1", "m2"]);
    assert!(d.callback.answers().is_empty());
    assert_eq!(d.worker.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_token_with_an_unreadable_body_fails_the_step_by_name() {
    let d = driver(vec![]);
    let response = d.handle_batch(batch(vec![message("m1", r#"{"taskToken":"t9","outcome":"maybe"}"#, 1)])).await;
    assert!(failed_ids(&response).is_empty());
    let answers = d.callback.answers();
    assert_eq!(answers.len(), 1);
    assert!(matches!(&answers[0].1, Answer::Failure { error, .. } if error == errors::INVALID_WORK_MESSAGE));
}

#[tokio::test]
async fn step_functions_unavailable_keeps_the_message() {
    let d = driver(vec![Ok("x".into())]);
    d.callback.unavailable.store(true, Ordering::SeqCst);
    let response = d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    assert_eq!(failed_ids(&response), vec!["m1"]);
}

#[test]
fn backoff_grows_is_jittered_and_bounded() {
    for attempt in 1..=10 {
        let step = (1u32 << (attempt - 1)).min(8);
        for _ in 0..50 {
            let d = POLICY.delay_after(attempt);
            let floor = (step / 2).max(1);
            assert!(d >= floor && d <= step, "attempt {attempt}: {d} outside {floor}..={step}");
        }
    }
}

/// A worker that takes its time.
struct Slow(std::time::Duration);

#[async_trait]
impl TaskWorker for Slow {
    type Work = NotificationWork;
    type Output = String;
    async fn perform(&self, _work: &NotificationWork, _attempt: Attempt) -> Result<String, StepError> {
        tokio::time::sleep(self.0).await;
        Ok("slow".into())
    }
}

#[tokio::test]
async fn long_work_keeps_its_step_alive_with_heartbeats() {
    let d = Driver {
        name: "test",
        worker: Slow(std::time::Duration::from_millis(250)),
        callback: RecordingCallback::default(),
        redelivery: Delays::default(),
        policy: POLICY,
        heartbeat_every: std::time::Duration::from_millis(60),
    };
    d.handle_batch(batch(vec![message("m1", &work_body("t1"), 1)])).await;
    let answers = d.callback.answers();
    let beats = answers.iter().filter(|(_, a)| *a == Answer::Heartbeat).count();
    assert!((3..=4).contains(&beats), "{beats} heartbeats in 250 ms at one per 60 ms");
    assert_eq!(answers.last().unwrap().1, Answer::Success("\"slow\"".into()));
}

fn sent_ago(mut m: SqsMessage, seconds: u64) -> SqsMessage {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    m.attributes.insert("SentTimestamp".into(), (now_ms - seconds * 1000).to_string());
    m
}

#[tokio::test]
async fn a_first_delivery_that_waited_behind_a_backlog_resets_the_heartbeat_clock_first() {
    // heartbeat_every is 60 s: a message sent 90 s ago has used most of a step's heartbeat
    // window in the queue, so the worker beats before working; one sent 5 s ago does not cost
    // a call.
    let d = driver(vec![Ok("a".into()), Ok("b".into())]);
    d.handle_batch(batch(vec![sent_ago(message("m1", &work_body("t1"), 1), 90)])).await;
    d.handle_batch(batch(vec![sent_ago(message("m2", &work_body("t2"), 1), 5)])).await;
    let answers = d.callback.answers();
    let beats = |token: &str| answers.iter().filter(|(t, a)| t == token && *a == Answer::Heartbeat).count();
    assert_eq!((beats("t1"), beats("t2")), (1, 0), "{answers:?}");
    assert_eq!(answers.iter().position(|(t, a)| t == "t1" && *a == Answer::Heartbeat), Some(0), "the beat comes before the answer");
}

#[tokio::test]
async fn a_waited_message_whose_step_timed_out_is_dropped_without_work() {
    let d = driver(vec![]);
    d.callback.succeed(&TaskToken::new("t1"), "earlier".into()).await.unwrap();
    let response = d.handle_batch(batch(vec![sent_ago(message("m1", &work_body("t1"), 1), 90)])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(d.worker.runs.load(Ordering::SeqCst), 0);
}
