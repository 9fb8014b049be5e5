//! Pending refund approvals and their task tokens: the approvals table (key `taskId`), which
//! only the approval path reads (the approvals function and the HTTP API's operator routes; no
//! other role has a grant on it). The token is what answers the workflow's approval step, so it
//! lives here and nowhere else: not on the task record (published), not in logs (`TaskToken`
//! has no readable `Debug`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_contracts::{ApprovalDecision, Money, TaskToken};
use thiserror::Error;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalState {
    /// Waiting for an operator.
    Pending,
    /// Decided (see `decision`); `delivered` says whether the workflow has been told.
    Decided,
    /// The deadline passed undecided.
    Expired,
}

/// One refund waiting for (or past) an operator's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    pub task_id: String,
    pub order_id: String,
    pub owner: String,
    pub amount: Money,
    pub currency: String,
    pub requested_at: DateTime<Utc>,
    /// After this, nobody may decide: the task ends REJECTED `APPROVAL_EXPIRED`.
    pub deadline: DateTime<Utc>,
    /// 1 for the first wait, 2 after the reminder (each wait has a token of its own).
    pub round: u8,
    pub state: ApprovalState,
    /// The token of the current wait (the workflow's approval step).
    pub task_token: TaskToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
    /// The decision has been answered to the workflow.
    #[serde(default)]
    pub delivered: bool,
}

#[derive(Debug, Error)]
pub enum ApprovalStoreError {
    #[error("approval store unavailable: {0}")]
    Unavailable(String),
    #[error("approval record {0} cannot be read: {1}")]
    Corrupt(String, String),
}

/// What a conditional write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Applied(Box<PendingApproval>),
    /// The condition did not hold; here is the record as it is (None: there is none).
    Conflict(Option<Box<PendingApproval>>),
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// The record, read consistently.
    async fn get(&self, task_id: &str) -> Result<Option<PendingApproval>, ApprovalStoreError>;
    /// Writes `approval` unless a record exists.
    async fn open(&self, approval: &PendingApproval) -> Result<Written, ApprovalStoreError>;
    /// The token of a later wait (`round`), unless the record is already at that round or later.
    async fn renew(&self, task_id: &str, token: &TaskToken, round: u8) -> Result<Written, ApprovalStoreError>;
    /// Records `decision` if the record is PENDING and its deadline is after `decision.at`.
    async fn decide(&self, task_id: &str, decision: &ApprovalDecision) -> Result<Written, ApprovalStoreError>;
    /// The decision has been answered to the workflow.
    async fn delivered(&self, task_id: &str) -> Result<(), ApprovalStoreError>;
    /// PENDING → EXPIRED (nothing if decided already).
    async fn expire(&self, task_id: &str) -> Result<(), ApprovalStoreError>;
}

pub struct DynamoApprovalStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoApprovalStore {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into() }
    }

    fn unavailable<E: std::error::Error + 'static>(err: aws_sdk_dynamodb::error::SdkError<E>) -> ApprovalStoreError {
        ApprovalStoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string())
    }

    fn decode(task_id: &str, item: HashMap<String, AttributeValue>) -> Result<PendingApproval, ApprovalStoreError> {
        serde_dynamo::from_item(item).map_err(|e| ApprovalStoreError::Corrupt(task_id.to_string(), e.to_string()))
    }

    async fn settle(
        &self,
        task_id: &str,
        result: Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>>,
    ) -> Result<Written, ApprovalStoreError> {
        match result {
            Ok(out) => Ok(Written::Applied(Box::new(Self::decode(task_id, out.attributes.unwrap_or_default())?))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Written::Conflict(self.get(task_id).await?.map(Box::new)))
            }
            Err(err) => Err(Self::unavailable(err)),
        }
    }
}

fn attribute<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("approval fields always serialise")
}

#[async_trait]
impl ApprovalStore for DynamoApprovalStore {
    async fn get(&self, task_id: &str) -> Result<Option<PendingApproval>, ApprovalStoreError> {
        let item = crate::dynamo::get(&self.client, &self.table, "taskId", task_id).await.map_err(Self::unavailable)?;
        item.map(|item| Self::decode(task_id, item)).transpose()
    }

    async fn open(&self, approval: &PendingApproval) -> Result<Written, ApprovalStoreError> {
        let item = serde_dynamo::to_item(approval).expect("approval records always serialise");
        let result = self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(taskId)").send().await;
        match result {
            Ok(_) => Ok(Written::Applied(Box::new(approval.clone()))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Written::Conflict(self.get(&approval.task_id).await?.map(Box::new)))
            }
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    async fn renew(&self, task_id: &str, token: &TaskToken, round: u8) -> Result<Written, ApprovalStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("taskId", AttributeValue::S(task_id.into()))
            .update_expression("SET taskToken = :token, #round = :round")
            .condition_expression("attribute_exists(taskId) AND #round < :round")
            .expression_attribute_names("#round", "round")
            .expression_attribute_values(":token", attribute(token))
            .expression_attribute_values(":round", attribute(&round))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.settle(task_id, result).await
    }

    async fn decide(&self, task_id: &str, decision: &ApprovalDecision) -> Result<Written, ApprovalStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("taskId", AttributeValue::S(task_id.into()))
            .update_expression("SET #state = :decided, decision = :decision")
            .condition_expression("#state = :pending AND deadline > :at")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":decided", attribute(&ApprovalState::Decided))
            .expression_attribute_values(":pending", attribute(&ApprovalState::Pending))
            .expression_attribute_values(":decision", attribute(decision))
            .expression_attribute_values(":at", attribute(&decision.at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.settle(task_id, result).await
    }

    async fn delivered(&self, task_id: &str) -> Result<(), ApprovalStoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("taskId", AttributeValue::S(task_id.into()))
            .update_expression("SET delivered = :yes")
            .condition_expression("attribute_exists(taskId)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .or_else(|err| if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) { Ok(()) } else { Err(Self::unavailable(err)) })
    }

    async fn expire(&self, task_id: &str) -> Result<(), ApprovalStoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("taskId", AttributeValue::S(task_id.into()))
            .update_expression("SET #state = :expired")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":expired", attribute(&ApprovalState::Expired))
            .expression_attribute_values(":pending", attribute(&ApprovalState::Pending))
            .send()
            .await
            .map(|_| ())
            .or_else(|err| if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) { Ok(()) } else { Err(Self::unavailable(err)) })
    }
}

/// A decision answered to the workflow's approval step with the record's current token: an
/// approval as the step's output (the decision: who, when, why), a denial as the failure
/// `RefundDenied`. Nothing to answer while undecided.
pub async fn deliver(callback: &dyn crate::callback::TaskCallback, approval: &PendingApproval) -> Result<(), crate::callback::CallbackError> {
    let Some(decision) = &approval.decision else { return Ok(()) };
    match decision.decision {
        taskflow_contracts::Decision::Approved => {
            callback.succeed(&approval.task_token, serde_json::to_string(decision).expect("decisions serialise")).await
        }
        taskflow_contracts::Decision::Denied => {
            callback.fail(&approval.task_token, taskflow_contracts::errors::REFUND_DENIED, "an operator denied the refund").await
        }
    }
}

/// Records `decision` on the task `task_id`: an approval as a note (the refund then goes ahead
/// from AWAITING_APPROVAL), a denial as REJECTED `REFUND_DENIED` with the operator's reason.
/// Idempotent: a task already decided (or no longer waiting) is left as it is.
pub async fn record_on_task(tasks: &dyn crate::tasks::TaskStore, task_id: &str, decision: &ApprovalDecision) -> Result<(), crate::tasks::StoreError> {
    use crate::tasks::{Change, Note};
    use taskflow_contracts::{Decision, Reason, TaskStatus};
    match decision.decision {
        Decision::Approved => tasks.note(task_id, &Note::Approval(decision.clone())).await,
        Decision::Denied => {
            let change = Change::to(TaskStatus::Rejected, decision.at).because(Reason::RefundDenied, decision.reason.clone()).with_approval(decision.clone());
            tasks.transition(task_id, &[TaskStatus::AwaitingApproval], &change).await.map(|_| ())
        }
    }
}

/// The approvals table in memory, for unit tests.
#[derive(Default)]
pub struct InMemoryApprovalStore {
    pub records: Mutex<HashMap<String, PendingApproval>>,
}

#[async_trait]
impl ApprovalStore for InMemoryApprovalStore {
    async fn get(&self, task_id: &str) -> Result<Option<PendingApproval>, ApprovalStoreError> {
        Ok(self.records.lock().unwrap().get(task_id).cloned())
    }

    async fn open(&self, approval: &PendingApproval) -> Result<Written, ApprovalStoreError> {
        let mut records = self.records.lock().unwrap();
        if let Some(existing) = records.get(&approval.task_id) {
            return Ok(Written::Conflict(Some(Box::new(existing.clone()))));
        }
        records.insert(approval.task_id.clone(), approval.clone());
        Ok(Written::Applied(Box::new(approval.clone())))
    }

    async fn renew(&self, task_id: &str, token: &TaskToken, round: u8) -> Result<Written, ApprovalStoreError> {
        let mut records = self.records.lock().unwrap();
        match records.get_mut(task_id) {
            Some(r) if r.round < round => {
                r.task_token = token.clone();
                r.round = round;
                Ok(Written::Applied(Box::new(r.clone())))
            }
            other => Ok(Written::Conflict(other.map(|r| Box::new(r.clone())))),
        }
    }

    async fn decide(&self, task_id: &str, decision: &ApprovalDecision) -> Result<Written, ApprovalStoreError> {
        let mut records = self.records.lock().unwrap();
        match records.get_mut(task_id) {
            Some(r) if r.state == ApprovalState::Pending && r.deadline > decision.at => {
                r.state = ApprovalState::Decided;
                r.decision = Some(decision.clone());
                Ok(Written::Applied(Box::new(r.clone())))
            }
            other => Ok(Written::Conflict(other.map(|r| Box::new(r.clone())))),
        }
    }

    async fn delivered(&self, task_id: &str) -> Result<(), ApprovalStoreError> {
        if let Some(r) = self.records.lock().unwrap().get_mut(task_id) {
            r.delivered = true;
        }
        Ok(())
    }

    async fn expire(&self, task_id: &str) -> Result<(), ApprovalStoreError> {
        if let Some(r) = self.records.lock().unwrap().get_mut(task_id) {
            if r.state == ApprovalState::Pending {
                r.state = ApprovalState::Expired;
            }
        }
        Ok(())
    }
}
