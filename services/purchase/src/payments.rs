//! The payment port, and the sandbox provider taskflow ships for development and tests.
//!
//! The sandbox behaves like a card sandbox: the payment token decides the outcome, and charges are
//! idempotent by key (the same key returns the same charge, as real providers do), kept in a
//! DynamoDB table so they survive restarts and can be counted.
//!
//! | payment token              | outcome                                                      |
//! |----------------------------|--------------------------------------------------------------|
//! | `tok_approve`              | approved                                                     |
//! | `tok_decline`              | declined, code `card_declined`                               |
//! | `tok_insufficient_funds`   | declined, code `insufficient_funds`                          |
//! | `tok_unavailable`          | the provider is unavailable on every attempt (transient)     |
//! | `tok_flaky`                | unavailable on the first attempt for a key, then approved    |
//! | anything else              | declined, code `unknown_test_token`                          |

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use taskflow_contracts::{Money, PaymentToken};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The same key always yields the same charge.
    pub idempotency_key: String,
    pub order_id: String,
    pub amount: Money,
    pub currency: String,
    pub payment_token: PaymentToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentError {
    #[error("declined: {code}")]
    Declined { code: String },
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, PaymentError>;
}

/// What the sandbox decides for a token, on the `attempt`-th request for a key.
pub fn sandbox_outcome(token: &PaymentToken, attempt: u32) -> Result<(), PaymentError> {
    let declined = |code: &str| Err(PaymentError::Declined { code: code.to_string() });
    match token.expose() {
        "tok_approve" => Ok(()),
        "tok_decline" => declined("card_declined"),
        "tok_insufficient_funds" => declined("insufficient_funds"),
        "tok_unavailable" => Err(PaymentError::Unavailable("sandbox: provider unavailable (tok_unavailable)".into())),
        "tok_flaky" if attempt <= 1 => Err(PaymentError::Unavailable("sandbox: first attempt fails (tok_flaky)".into())),
        "tok_flaky" => Ok(()),
        _ => declined("unknown_test_token"),
    }
}

/// The sandbox provider, its charges in a DynamoDB table keyed by `idempotencyKey`.
pub struct SandboxPayments {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SandboxPayments {
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self { client: aws_sdk_dynamodb::Client::new(config), table: table.into() }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> PaymentError {
    PaymentError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}

#[async_trait]
impl PaymentProvider for SandboxPayments {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, PaymentError> {
        // Count every request for the key; the first approved one creates the charge id and the
        // same id is returned to every later request.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("idempotencyKey", AttributeValue::S(request.idempotency_key.clone()))
            .update_expression("ADD requests :one SET orderId = :order, amount = :amount, currency = :currency")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":order", AttributeValue::S(request.order_id.clone()))
            .expression_attribute_values(":amount", AttributeValue::N(request.amount.to_string()))
            .expression_attribute_values(":currency", AttributeValue::S(request.currency.clone()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        let item = out.attributes.unwrap_or_default();
        if let Some(AttributeValue::S(existing)) = item.get("chargeId") {
            return Ok(Charge { charge_id: existing.clone() });
        }
        let requests = match item.get("requests") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(1),
            _ => 1,
        };
        sandbox_outcome(&request.payment_token, requests)?;
        let charge_id = format!("ch_{}", uuid::Uuid::new_v4().simple());
        let created = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("idempotencyKey", AttributeValue::S(request.idempotency_key.clone()))
            .update_expression("SET chargeId = if_not_exists(chargeId, :id)")
            .expression_attribute_values(":id", AttributeValue::S(charge_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        match created.attributes.as_ref().and_then(|a| a.get("chargeId")) {
            Some(AttributeValue::S(id)) => Ok(Charge { charge_id: id.clone() }),
            _ => Err(PaymentError::Unavailable("sandbox: charge id not stored".into())),
        }
    }
}
