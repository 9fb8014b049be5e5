//! Answering a task token: the port, and its Step Functions adapter.

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use taskflow_contracts::TaskToken;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CallbackError {
    /// The step was already answered, timed out, or its execution ended: nothing will ever
    /// accept this token again, so the message that carried it is done.
    #[error("task token is spent: {0}")]
    TokenSpent(String),
    /// Step Functions could not be reached or throttled us: try again later.
    #[error("step functions unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TaskCallback: Send + Sync {
    /// `output` is the step's JSON result.
    async fn succeed(&self, token: &TaskToken, output: String) -> Result<(), CallbackError>;
    /// `error` is a name the state machine may match on; `cause` is for people.
    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), CallbackError>;
    /// Keeps a long or retried step alive; tells us early when the token is already spent.
    async fn heartbeat(&self, token: &TaskToken) -> Result<(), CallbackError>;
}

pub struct StepFunctionsCallback {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsCallback {
    pub fn new(aws: &impl crate::clients::ClientSource) -> Self {
        Self { client: aws.sfn() }
    }
}

/// A failure as Step Functions takes it: `error` cut to 256 characters (SendTaskFailure `error`,
/// Step Functions API reference), `cause` to `limits::MAX_FAILURE_CAUSE_CHARS` (AWS takes 32768;
/// the caught failure becomes part of the execution's state, itself limited to 256 KiB). Longer,
/// AWS refuses the call (ValidationException) and the step could never be answered.
pub fn bounded_failure(error: &str, cause: &str) -> (String, String) {
    use taskflow_contracts::limits;
    (limits::truncate(error, limits::SFN_ERROR_MAX_CHARS), limits::truncate(cause, limits::MAX_FAILURE_CAUSE_CHARS))
}

/// Step Functions names for a token that can never be answered again.
const SPENT_TOKEN_ERRORS: [&str; 3] = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"];

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(err: aws_sdk_sfn::error::SdkError<E>) -> CallbackError {
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default().to_string();
    if SPENT_TOKEN_ERRORS.contains(&code.as_str()) {
        CallbackError::TokenSpent(code)
    } else {
        CallbackError::Unavailable(format!("{code} {}", aws_sdk_sfn::error::DisplayErrorContext(&err)))
    }
}

#[async_trait]
impl TaskCallback for StepFunctionsCallback {
    async fn succeed(&self, token: &TaskToken, output: String) -> Result<(), CallbackError> {
        self.client
            .send_task_success()
            .task_token(token.expose())
            .output(output)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), CallbackError> {
        let (error, cause) = bounded_failure(error, cause);
        self.client
            .send_task_failure()
            .task_token(token.expose())
            .error(error)
            .cause(cause)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn heartbeat(&self, token: &TaskToken) -> Result<(), CallbackError> {
        self.client
            .send_task_heartbeat()
            .task_token(token.expose())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_contracts::limits;

    #[test]
    fn a_failure_is_cut_to_what_step_functions_takes() {
        let (error, cause) = bounded_failure(&"E".repeat(300), &"c".repeat(100_000));
        assert_eq!(error.chars().count(), limits::SFN_ERROR_MAX_CHARS);
        assert_eq!(cause.chars().count(), limits::MAX_FAILURE_CAUSE_CHARS);
        assert_eq!(bounded_failure("PaymentDeclined", "card_declined"), ("PaymentDeclined".to_string(), "card_declined".to_string()));
    }
}
