//! Workflow executions as operators' tools see them: stop one (a cancellation), read its state
//! (the sweeper). The port, and its Step Functions adapter.

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use thiserror::Error;

/// Where an execution is (`DescribeExecution`'s `status`, named as Step Functions names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionState {
    Running,
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED or any other ended status: nothing runs it any more.
    Ended,
    /// No execution of this ARN exists (never started, or out of Step Functions' 90-day retention).
    Missing,
}

#[derive(Debug, Error)]
#[error("ExecutionsUnavailable: {0}")]
pub struct ExecutionError(pub String);

#[async_trait]
pub trait Executions: Send + Sync {
    /// Stops a running execution (`StopExecution`, error `error`, `cause` at most 32768
    /// characters). An execution that has ended or does not exist is not an error: stopping is
    /// idempotent.
    async fn stop(&self, execution_arn: &str, error: &str, cause: &str) -> Result<(), ExecutionError>;
    /// Where the execution is.
    async fn state(&self, execution_arn: &str) -> Result<ExecutionState, ExecutionError>;
}

/// arn:…:stateMachine:M → arn:…:execution:M:NAME (the ARN Step Functions gives the execution
/// named NAME of state machine M).
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!("{}:{name}", state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
}

/// The ARNs of the two workflows (`PURCHASE_WORKFLOW_ARN`, `REFUND_WORKFLOW_ARN` in a function's
/// environment; the stack outputs `PurchaseWorkflowArn`, `RefundWorkflowArn`): a task's execution
/// ARN follows from them and its task id, so it is not written on the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowArns {
    pub purchase: String,
    pub refund: String,
}

impl WorkflowArns {
    /// The ARN of `task`'s execution: the one noted on records written before it was derived,
    /// else the execution named by the task id in the workflow of its kind. `None` for a task no
    /// workflow was started for (one created other than RECEIVED, or of no known kind). A task
    /// still RECEIVED may not have its execution yet (the intake starts it right after writing
    /// the task): Step Functions then answers `ExecutionDoesNotExist` for this ARN.
    pub fn execution_of(&self, task: &crate::tasks::TaskRecord) -> Option<String> {
        if let Some(arn) = &task.execution_arn {
            return Some(arn.clone());
        }
        if task.history.first().map(|h| h.status) != Some(taskflow_contracts::TaskStatus::Received) {
            return None;
        }
        let machine = match task.kind? {
            taskflow_contracts::OrderKind::Purchase => &self.purchase,
            taskflow_contracts::OrderKind::Refund => &self.refund,
        };
        Some(execution_arn(machine, &task.task_id))
    }
}

pub struct StepFunctionsExecutions {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsExecutions {
    pub fn new(aws: &impl crate::clients::ClientSource) -> Self {
        Self { client: aws.sfn() }
    }
}

fn unavailable<E: std::error::Error + 'static>(err: aws_sdk_sfn::error::SdkError<E>) -> ExecutionError {
    ExecutionError(aws_sdk_sfn::error::DisplayErrorContext(&err).to_string())
}

#[async_trait]
impl Executions for StepFunctionsExecutions {
    async fn stop(&self, execution_arn: &str, error: &str, cause: &str) -> Result<(), ExecutionError> {
        match self.client.stop_execution().execution_arn(execution_arn).error(error).cause(cause).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ExecutionDoesNotExist") => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn state(&self, execution_arn: &str) -> Result<ExecutionState, ExecutionError> {
        match self.client.describe_execution().execution_arn(execution_arn).send().await {
            Ok(out) => Ok(match out.status {
                aws_sdk_sfn::types::ExecutionStatus::Running => ExecutionState::Running,
                _ => ExecutionState::Ended,
            }),
            Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ExecutionDoesNotExist") => Ok(ExecutionState::Missing),
            Err(err) => Err(unavailable(err)),
        }
    }
}

#[cfg(test)]
mod workflow_arn_tests {
    use super::*;
    use crate::tasks::TaskRecord;
    use chrono::Utc;
    use taskflow_contracts::{OrderKind, Reason, TaskStatus};

    const PM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:purchase";
    const RM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:refund";

    #[test]
    fn an_execution_arn_is_derived_from_the_workflow_of_the_kind_and_the_task_id() {
        let workflows = WorkflowArns { purchase: PM.into(), refund: RM.into() };
        let mut task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        assert_eq!(workflows.execution_of(&task), Some(format!("arn:aws:states:us-east-1:123456789012:execution:purchase:{}", task.task_id)));
        task.kind = Some(OrderKind::Refund);
        assert_eq!(workflows.execution_of(&task), Some(format!("arn:aws:states:us-east-1:123456789012:execution:refund:{}", task.task_id)));
        // One noted on an older record is kept as it is.
        task.execution_arn = Some("arn:noted".into());
        assert_eq!(workflows.execution_of(&task).as_deref(), Some("arn:noted"));
        // No workflow ran for a rejection, nor for a task of no known kind.
        let mut rejected = TaskRecord::new("o-2", "alice", TaskStatus::Rejected, Some(Reason::NoItems), Utc::now());
        rejected.kind = Some(OrderKind::Purchase);
        assert_eq!(workflows.execution_of(&rejected), None);
        let unknown = TaskRecord::new("o-3", "alice", TaskStatus::Received, None, Utc::now());
        assert_eq!(workflows.execution_of(&unknown), None);
    }
}
