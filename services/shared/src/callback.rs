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
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { client: aws_sdk_sfn::Client::new(config) }
    }
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
