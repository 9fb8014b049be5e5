//! The SQS task-token driver every worker service runs on.
//!
//! A work message carries a Step Functions task token. For each message of a batch the driver
//! runs the service's [`TaskWorker`] and answers the token:
//! - success → `SendTaskSuccess` with the worker's output; a failure the worker calls final →
//!   `SendTaskFailure` with its error name (the state machine's Catch matches on it);
//! - a transient failure → the message stays on the queue (a partial batch failure) and comes back
//!   after a backoff with jitter; on its last delivery (the queue's `maxReceiveCount`) the token is
//!   answered with the failure instead, so the workflow moves on rather than waiting for a timeout;
//! - a token already answered, timed out or of an ended execution → the message is done (deleted);
//! - a message without a readable token cannot be answered → it is left to fail until SQS moves it
//!   to the dead-letter queue; one with a token but an unreadable body → `InvalidWorkMessage`.
//!
//! Messages of a batch are independent and handled concurrently: one failing never makes the
//! others redeliver, and one slow message does not hold up the rest.

use crate::callback::{CallbackError, TaskCallback};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::sqs::BatchItemFailure;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use taskflow_contracts::{errors, NotificationWork, PurchaseWork, RefundWork, TaskToken};
use tracing::{error, info, warn, Instrument};

/// A message a worker receives: it carries a task token and names its order.
pub trait WorkMessage: DeserializeOwned + Send + Sync {
    fn task_token(&self) -> &TaskToken;
    fn order_id(&self) -> &str;
}

/// What the driver needs of any message body, read before the body is known to be valid: the
/// token to answer, and the trace to continue.
#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(rename = "taskToken")]
    task_token: Option<TaskToken>,
    #[serde(rename = "traceHeader", default)]
    trace_header: Option<String>,
}

impl WorkMessage for PurchaseWork {
    fn task_token(&self) -> &TaskToken {
        &self.task_token
    }
    fn order_id(&self) -> &str {
        &self.order.order_id
    }
}

impl WorkMessage for RefundWork {
    fn task_token(&self) -> &TaskToken {
        &self.task_token
    }
    fn order_id(&self) -> &str {
        &self.order.order_id
    }
}

impl WorkMessage for NotificationWork {
    fn task_token(&self) -> &TaskToken {
        &self.task_token
    }
    fn order_id(&self) -> &str {
        &self.order_id
    }
}

/// Which delivery of a message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first delivery.
    pub number: u32,
    /// No delivery follows this one: a transient failure now is answered as final.
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The step failed for good; `error` is the name the state machine matches on.
    Failed { error: String, cause: String },
    /// Something transient (a provider or the store unavailable): worth another delivery, not
    /// sooner than `after` seconds if given.
    Retry { error: String, cause: String, after: Option<u32> },
}

impl StepError {
    /// A side effect guarded by [`crate::idempotency::once`]: busy or store trouble is worth a
    /// retry; the effect's own error is mapped by `effect`.
    pub fn from_once<E>(e: crate::idempotency::Once<E>, effect: impl FnOnce(E) -> StepError) -> StepError {
        match e {
            crate::idempotency::Once::Busy(key) => StepError::retry(errors::STEP_IN_PROGRESS, key),
            crate::idempotency::Once::Store(e) => StepError::retry("IdempotencyStoreUnavailable", e.to_string()),
            crate::idempotency::Once::Effect(e) => effect(e),
        }
    }

    pub fn failed(error: &str, cause: impl Into<String>) -> Self {
        StepError::Failed { error: error.to_string(), cause: cause.into() }
    }
    pub fn retry(error: &str, cause: impl Into<String>) -> Self {
        StepError::Retry { error: error.to_string(), cause: cause.into(), after: None }
    }
    /// A retry that is pointless before `seconds` have passed (a claim still held, say).
    pub fn retry_after(error: &str, cause: impl Into<String>, seconds: u32) -> Self {
        StepError::Retry { error: error.to_string(), cause: cause.into(), after: Some(seconds) }
    }
}

/// What a service does with one work message.
#[async_trait]
pub trait TaskWorker: Send + Sync {
    type Work: WorkMessage;
    type Output: Serialize + Send + Sync;
    async fn perform(&self, work: &Self::Work, attempt: Attempt) -> Result<Self::Output, StepError>;
}

/// Makes a message come back later than the queue's visibility timeout would.
#[async_trait]
pub trait Redelivery: Send + Sync {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), String>;
}

/// `ChangeMessageVisibility` on the work queue. Only a failed or unreadable message calls it, so
/// its SQS client is built on the first such call, not at init ([`crate::on_first_use`]).
pub struct SqsRedelivery {
    client: crate::on_first_use::OnFirstUse<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl SqsRedelivery {
    pub fn new(aws: &impl crate::clients::ClientSource, queue_url: impl Into<String>) -> Self {
        Self { client: aws.sqs_on_first_use(), queue_url: queue_url.into() }
    }
}

#[async_trait]
impl Redelivery for SqsRedelivery {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), String> {
        self.client
            .get()
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

/// How often and how far apart a message is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The queue's `maxReceiveCount`: deliveries before SQS moves a message to the DLQ.
    pub max_attempts: u32,
    pub base_delay_secs: u32,
    pub max_delay_secs: u32,
}

impl RetryPolicy {
    /// Exponential backoff with equal jitter: half the step fixed, half random; never under a
    /// second, which would be an immediate redelivery.
    pub fn delay_after(&self, attempt: u32) -> u32 {
        let step = self
            .base_delay_secs
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay_secs)
            .max(1);
        (step / 2 + rand::random_range(0..=step - step / 2)).max(1)
    }

    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(RetryPolicy {
            max_attempts: crate::config::number_or("MAX_RECEIVE_COUNT", 5)?,
            base_delay_secs: crate::config::number_or("RETRY_BASE_DELAY_SECONDS", 1)?,
            max_delay_secs: crate::config::number_or("RETRY_MAX_DELAY_SECONDS", 20)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Delete the message.
    Done,
    /// Report it as a batch item failure so SQS delivers it again (or dead-letters it).
    Again,
}

pub struct Driver<W, C, R> {
    /// The service's name: its segment name in traces, its dimension in metrics.
    pub name: &'static str,
    pub worker: W,
    pub callback: C,
    pub redelivery: R,
    pub policy: RetryPolicy,
    /// While a worker runs, the step is kept alive this often (well under `HeartbeatSeconds`).
    pub heartbeat_every: std::time::Duration,
}

impl<W: TaskWorker, C: TaskCallback, R: Redelivery> Driver<W, C, R> {
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let dispositions = futures::future::join_all(event.records.iter().map(|m| self.handle_message(m))).await;
        for (message, disposition) in event.records.iter().zip(dispositions) {
            if disposition == Disposition::Again {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn handle_message(&self, message: &SqsMessage) -> Disposition {
        let body = message.body.as_deref().unwrap_or_default();
        let envelope: Result<Envelope, _> = serde_json::from_str(body);
        // The platform's header (set by Step Functions on AWS) first, then the one in the body.
        let header = message
            .attributes
            .get(crate::telemetry::TRACE_HEADER)
            .map(String::as_str)
            .or_else(|| envelope.as_ref().ok().and_then(|e| e.trace_header.as_deref()));
        let span = crate::telemetry::continue_trace(self.name, header);
        self.handle_traced(message, envelope).instrument(span).await
    }

    async fn handle_traced(&self, message: &SqsMessage, envelope: Result<Envelope, serde_json::Error>) -> Disposition {
        let number = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1u32);
        let attempt = Attempt { number, last: number >= self.policy.max_attempts };
        let body = message.body.as_deref().unwrap_or_default();
        let message_id = message.message_id.as_deref().unwrap_or_default();

        let token = match envelope.and_then(|e| e.task_token.ok_or_else(|| serde::de::Error::missing_field("taskToken"))) {
            Ok(token) => token,
            Err(e) => {
                // Nobody can be answered: leave it to reach the dead-letter queue.
                error!(message_id, attempt = number, error = "PoisonMessage", detail = %e, "work message has no task token; it will go to the dead-letter queue");
                // No backoff: nothing will change, so let it reach the dead-letter queue quickly.
                if let Some(receipt) = message.receipt_handle.as_deref() {
                    let _ = self.redelivery.delay(receipt, 0).await;
                }
                return Disposition::Again;
            }
        };
        let work: W::Work = match serde_json::from_str(body) {
            Ok(work) => work,
            Err(e) => {
                warn!(message_id, error = errors::INVALID_WORK_MESSAGE, detail = %e, "unreadable work message");
                let answered = self.callback.fail(&token, errors::INVALID_WORK_MESSAGE, &e.to_string()).await;
                return self.settle(message, attempt, answered).await;
            }
        };
        let order_id = work.order_id();
        tracing::Span::current().record("order_id", order_id);

        let waited = waited_in_queue(message);
        if attempt.number > 1 || waited.is_some_and(|w| w >= self.heartbeat_every) {
            // A retry, or a message that waited long behind a backlog: the step's heartbeat clock
            // has run since the message was sent (or since the last delivery), so reset it before
            // the work, and stop early if the step is already over. (Without this, the first
            // gap — sent, waited, failed, invisible, waited again — would have no heartbeat; the
            // rule that sets HeartbeatSeconds counts on it: README "Timeouts under a backlog".)
            match self.callback.heartbeat(&token).await {
                Err(CallbackError::TokenSpent(code)) => {
                    info!(order_id, code, attempt = number, "step already over; message dropped without work");
                    return Disposition::Done;
                }
                Err(CallbackError::Unavailable(e)) => warn!(order_id, error = %e, "heartbeat failed"),
                Ok(()) => {}
            }
        }

        let answered = match self.perform_alive(&work, &token, attempt).await {
            Ok(output) => {
                let output = serde_json::to_string(&output).expect("outputs always serialise");
                if output.len() > taskflow_contracts::limits::SFN_PAYLOAD_MAX_BYTES {
                    // Step Functions would refuse it (ValidationException) on every try: fail the
                    // step by name instead, so the workflow takes its failure path.
                    let cause = format!("the step's output is {} bytes; Step Functions takes at most {}", output.len(), taskflow_contracts::limits::SFN_PAYLOAD_MAX_BYTES);
                    error!(order_id, error = errors::OUTPUT_TOO_LARGE, cause, "step output too large");
                    self.callback.fail(&token, errors::OUTPUT_TOO_LARGE, &cause).await
                } else {
                    self.callback.succeed(&token, output).await
                }
            }
            Err(StepError::Failed { error, cause }) => {
                info!(order_id, error, cause, "step failed");
                self.callback.fail(&token, &error, &cause).await
            }
            Err(StepError::Retry { error, cause, .. }) if attempt.last && error == errors::STEP_IN_PROGRESS => {
                // Another delivery is doing this step right now and will answer the token; failing
                // it from here would send the workflow down the failure path under its feet. If
                // that holder is dead instead, the step's heartbeat timeout moves the workflow on
                // (and the failure path compensates whatever it did).
                warn!(order_id, error, cause, attempt = number, "last delivery found the step in progress; leaving it to its holder");
                return Disposition::Again;
            }
            Err(StepError::Retry { error, cause, .. }) if attempt.last => {
                warn!(order_id, error, cause, attempt = number, "retries exhausted; failing the step");
                self.callback.fail(&token, &error, &cause).await
            }
            Err(StepError::Retry { error, cause, after }) => {
                warn!(order_id, error, cause, attempt = number, "transient failure; will retry");
                crate::metrics::count("Retries", &[("Service", self.name)]);
                self.delay(message, attempt, after).await;
                return Disposition::Again;
            }
        };
        self.settle(message, attempt, answered).await
    }

    /// Runs the worker, sending a heartbeat every `heartbeat_every` while it works, so long work
    /// (a slow provider, say) is not mistaken for a dead worker.
    async fn perform_alive(&self, work: &W::Work, token: &TaskToken, attempt: Attempt) -> Result<W::Output, StepError> {
        let perform = self.worker.perform(work, attempt);
        tokio::pin!(perform);
        let start = tokio::time::Instant::now() + self.heartbeat_every;
        let mut beat = tokio::time::interval_at(start, self.heartbeat_every);
        loop {
            tokio::select! {
                result = &mut perform => return result,
                _ = beat.tick() => {
                    if let Err(e) = self.callback.heartbeat(token).await {
                        warn!(order_id = work.order_id(), error = %e, "heartbeat failed");
                    }
                }
            }
        }
    }

    async fn settle(&self, message: &SqsMessage, attempt: Attempt, answered: Result<(), CallbackError>) -> Disposition {
        match answered {
            Ok(()) => Disposition::Done,
            Err(CallbackError::TokenSpent(code)) => {
                info!(code, "task token already spent; message done");
                Disposition::Done
            }
            Err(CallbackError::Unavailable(e)) => {
                warn!(error = %e, "could not answer the task token; will retry");
                self.delay(message, attempt, None).await;
                Disposition::Again
            }
        }
    }

    async fn delay(&self, message: &SqsMessage, attempt: Attempt, at_least: Option<u32>) {
        if attempt.last {
            return;
        }
        if let Some(receipt) = message.receipt_handle.as_deref() {
            // SQS takes at most 12 hours.
            let seconds = self.policy.delay_after(attempt.number).max(at_least.unwrap_or(0)).min(43_200);
            if let Err(e) = self.redelivery.delay(receipt, seconds).await {
                // The queue's visibility timeout still brings it back, only later.
                warn!(error = %e, "could not shorten the redelivery delay");
            }
        }
    }
}

/// How long a message waited between being sent and this delivery: now minus its SQS
/// `SentTimestamp` attribute (epoch milliseconds); `None` when the attribute is missing or
/// unreadable (the event source mapping passes it on AWS: SQS `ReceiveMessage`
/// `MessageSystemAttributeNames`).
fn waited_in_queue(message: &SqsMessage) -> Option<std::time::Duration> {
    let sent_ms: u64 = message.attributes.get("SentTimestamp")?.parse().ok()?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(std::time::Duration::from_millis(now_ms.saturating_sub(sent_ms)))
}

/// Runs `worker` as a Lambda function fed by an SQS queue with `ReportBatchItemFailures`.
/// Reads `WORK_QUEUE_URL` and the retry policy from the environment.
pub async fn run<W: TaskWorker + 'static>(telemetry: crate::telemetry::Telemetry, worker: W, aws: &impl crate::clients::ClientSource) -> Result<(), lambda_runtime::Error> {
    let telemetry = std::sync::Arc::new(telemetry);
    let driver = Driver {
        name: telemetry.function(),
        worker,
        callback: crate::callback::StepFunctionsCallback::new(aws),
        redelivery: SqsRedelivery::new(aws, crate::config::required("WORK_QUEUE_URL")?),
        policy: RetryPolicy::from_env()?,
        heartbeat_every: std::time::Duration::from_secs(crate::config::number_or("HEARTBEAT_INTERVAL_SECONDS", 20)?),
    };
    let driver = std::sync::Arc::new(driver);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (driver, telemetry) = (driver.clone(), telemetry.clone());
        async move {
            let response = driver.handle_batch(event.payload).instrument(crate::telemetry::invocation(&event.context)).await;
            telemetry.flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

#[cfg(test)]
mod tests;
