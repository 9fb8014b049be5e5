//! Starting an order's workflow: the port and its Step Functions adapter. Each kind of order has
//! its own workflow (purchase, refund), so the workflow spends no state routing by kind.

use async_trait::async_trait;
use taskflow_contracts::OrderKind;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    New(String),
    /// An execution with this name exists (running with the same input, or ended).
    Existing(String),
}

#[derive(Debug, Error)]
#[error("{0}")]
pub struct WorkflowError(pub String);

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts the workflow of orders of `kind`, named `name` (the order id), with `input`, at
    /// most once per name. `trace_header` makes the execution part of the order's trace (Step
    /// Functions' own segments, on AWS).
    async fn start(&self, kind: OrderKind, name: &str, input: &str, trace_header: Option<&str>) -> Result<Started, WorkflowError>;
}

pub struct StepFunctionsWorkflows {
    client: aws_sdk_sfn::Client,
    purchase_arn: String,
    refund_arn: String,
}

impl StepFunctionsWorkflows {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, purchase_arn: impl Into<String>, refund_arn: impl Into<String>) -> Self {
        Self { client: aws.sfn(), purchase_arn: purchase_arn.into(), refund_arn: refund_arn.into() }
    }

    fn state_machine_arn(&self, kind: OrderKind) -> &str {
        match kind {
            OrderKind::Purchase => &self.purchase_arn,
            OrderKind::Refund => &self.refund_arn,
        }
    }
}

/// arn:…:stateMachine:M → arn:…:execution:M:NAME
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!("{}:{name}", state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
}

#[async_trait]
impl Workflows for StepFunctionsWorkflows {
    async fn start(&self, kind: OrderKind, name: &str, input: &str, trace_header: Option<&str>) -> Result<Started, WorkflowError> {
        let state_machine_arn = self.state_machine_arn(kind);
        let result = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
            .set_trace_header(trace_header.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Started::New(out.execution_arn)),
            Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ExecutionAlreadyExists") => {
                Ok(Started::Existing(execution_arn(state_machine_arn, name)))
            }
            Err(err) => Err(WorkflowError(aws_sdk_sfn::error::DisplayErrorContext(&err).to_string())),
        }
    }
}
