//! The payment port, and the sandbox provider taskflow ships for development and tests.
//!
//! The sandbox behaves like a card sandbox: the payment token decides the outcome, and charges and
//! refunds are idempotent by key (the same key returns the same charge or refund, as real
//! providers do), kept in a DynamoDB table so they survive restarts and can be counted: one item
//! per key, with `kind` (charge or refund), `orderId`, `amount` and how many `requests` it got.
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

/// Calls the provider up to `tries` times while it is unavailable, pausing a little (jittered)
/// between calls: for calls that owe money back and should not spend a whole redelivery on one
/// blip. Bounded, and well inside a function's timeout.
pub async fn persistently<T, F, Fut>(tries: u32, mut call: F) -> Result<T, PaymentError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PaymentError>>,
{
    let mut failed = 0;
    loop {
        match call().await {
            Err(PaymentError::Unavailable(_)) if failed + 1 < tries => {
                failed += 1;
                let pause = 100 * u64::from(failed) + rand::random_range(0..100);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// The idempotency key of an order's charge, from its task id (`keys::task_id`: scoped per
/// owner, so another owner's order with the same order id can never get this charge back).
pub fn charge_key(task_id: &str) -> String {
    format!("{task_id}/charge")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The same key always yields the same charge.
    pub idempotency_key: String,
    pub order_id: String,
    pub amount: Money,
    pub currency: String,
    pub payment_token: PaymentToken,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Charge {
    pub charge_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    /// The order whose charge is refunded.
    pub order_id: String,
    pub charge_id: String,
    pub amount: Money,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refund {
    pub refund_id: String,
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
    async fn refund(&self, request: &RefundRequest) -> Result<Refund, PaymentError>;
    /// The charge made under `idempotency_key`, if one was (providers look charges up by the
    /// merchant's reference): how a compensation learns what a crashed purchase did.
    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, PaymentError>;
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
///
/// Like a provider's sandbox it can simulate a bad day, off by default: `SANDBOX_FAULT_RATE`
/// (0–1) of requests fail transiently before doing anything, and every request takes at least
/// `SANDBOX_LATENCY_MS`. And an outage that starts and ends on demand (local stacks only):
/// while the file named by `SANDBOX_OUTAGE_FILE` exists, the operations it lists
/// (whitespace-separated among `charge`, `refund`, `find_charge`; an empty file: all) fail as
/// unavailable — "the provider is down, then back".
pub struct SandboxPayments {
    client: aws_sdk_dynamodb::Client,
    table: String,
    fault_rate: f64,
    latency: std::time::Duration,
    outage_file: Option<std::path::PathBuf>,
}

impl SandboxPayments {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into(), fault_rate: 0.0, latency: std::time::Duration::ZERO, outage_file: None }
    }

    /// With the simulated faults read from the environment.
    pub fn from_env(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            fault_rate: crate::config::number_or("SANDBOX_FAULT_RATE", 0.0)?,
            latency: std::time::Duration::from_millis(crate::config::number_or("SANDBOX_LATENCY_MS", 0)?),
            outage_file: std::env::var_os("SANDBOX_OUTAGE_FILE").filter(|v| !v.is_empty()).map(Into::into),
            ..Self::new(aws, table)
        })
    }

    async fn bad_day(&self, operation: &str) -> Result<(), PaymentError> {
        if let Some(file) = &self.outage_file
            && let Ok(text) = std::fs::read_to_string(file)
        {
            let mut listed = text.split_whitespace().peekable();
            if listed.peek().is_none() || listed.any(|op| op == operation) {
                return Err(PaymentError::Unavailable(format!("sandbox: provider down for {operation} (SANDBOX_OUTAGE_FILE)")));
            }
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.fault_rate > 0.0 && rand::random::<f64>() < self.fault_rate {
            return Err(PaymentError::Unavailable("sandbox: injected outage (SANDBOX_FAULT_RATE)".into()));
        }
        Ok(())
    }
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> PaymentError {
    PaymentError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}

impl SandboxPayments {
    /// Counts a request for `key` and returns the id already issued for it, or the decline
    /// already answered, if any.
    async fn request(&self, key: &str, kind: &str, order_id: &str, amount: Money, currency: &str) -> Result<(u32, Option<String>, Option<String>), PaymentError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("idempotencyKey", AttributeValue::S(key.to_string()))
            .update_expression("ADD requests :one SET kind = :kind, orderId = :order, amount = :amount, currency = :currency")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":kind", AttributeValue::S(kind.to_string()))
            .expression_attribute_values(":order", AttributeValue::S(order_id.to_string()))
            .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
            .expression_attribute_values(":currency", AttributeValue::S(currency.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        let item = out.attributes.unwrap_or_default();
        let requests = item.get("requests").and_then(|n| n.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(1);
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok((requests, text("id"), text("declined")))
    }

    /// Issues `id` for `key` unless one was issued first; returns the one that holds.
    async fn issue(&self, key: &str, id: String) -> Result<String, PaymentError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("idempotencyKey", AttributeValue::S(key.to_string()))
            .update_expression("SET id = if_not_exists(id, :id)")
            .expression_attribute_values(":id", AttributeValue::S(id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        out.attributes
            .and_then(|a| a.get("id").and_then(|v| v.as_s().ok()).cloned())
            .ok_or_else(|| PaymentError::Unavailable("sandbox: id not stored".into()))
    }
}

impl SandboxPayments {
    /// A first request for a charge key whose outcome the token decides at once (approved or
    /// declined): one conditional put records the request, its outcome and, if approved, the
    /// charge id. `None` when a record for the key was there first (a repeat, or a concurrent
    /// first request that won): the caller replays what it holds.
    async fn decide_once(&self, request: &ChargeRequest, outcome: &Result<(), PaymentError>) -> Result<Option<Result<Charge, PaymentError>>, PaymentError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("idempotencyKey", AttributeValue::S(request.idempotency_key.clone()))
            .item("kind", AttributeValue::S("charge".into()))
            .item("orderId", AttributeValue::S(request.order_id.clone()))
            .item("amount", AttributeValue::N(request.amount.to_string()))
            .item("currency", AttributeValue::S(request.currency.clone()))
            .item("requests", AttributeValue::N("1".into()))
            .condition_expression("attribute_not_exists(idempotencyKey)");
        let answer = match outcome {
            Ok(()) => {
                let charge_id = format!("ch_{}", uuid::Uuid::new_v4().simple());
                put = put.item("id", AttributeValue::S(charge_id.clone()));
                Ok(Charge { charge_id })
            }
            Err(PaymentError::Declined { code }) => {
                put = put.item("declined", AttributeValue::S(code.clone()));
                Err(PaymentError::Declined { code: code.clone() })
            }
            Err(e) => return Err(e.clone()),
        };
        match put.send().await {
            Ok(_) => Ok(Some(answer)),
            Err(e) if crate::dynamo::conditional_failed(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl PaymentProvider for SandboxPayments {
    /// Idempotent by `idempotency_key`, as a real provider is (Stripe replays the first result
    /// for a key): the first request decides, approved or declined, and every later or
    /// concurrent request with the key gets that same answer — never a second charge, never a
    /// different one. An approval or a decline on the first request costs one conditional put;
    /// repeats (and the tokens that fail transiently first) count the request and replay.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, PaymentError> {
        self.bad_day("charge").await?;
        let key = &request.idempotency_key;
        let first = sandbox_outcome(&request.payment_token, 1);
        if !matches!(first, Err(PaymentError::Unavailable(_)))
            && let Some(answer) = self.decide_once(request, &first).await?
        {
            return answer;
        }
        let (requests, issued, declined) = self.request(key, "charge", &request.order_id, request.amount, &request.currency).await?;
        if let Some(charge_id) = issued {
            return Ok(Charge { charge_id });
        }
        if let Some(code) = declined {
            return Err(PaymentError::Declined { code });
        }
        sandbox_outcome(&request.payment_token, requests)?;
        let charge_id = self.issue(key, format!("ch_{}", uuid::Uuid::new_v4().simple())).await?;
        Ok(Charge { charge_id })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, PaymentError> {
        self.bad_day("refund").await?;
        let key = &request.idempotency_key;
        let (_, issued, _) = self.request(key, "refund", &request.order_id, request.amount, &request.currency).await?;
        if let Some(refund_id) = issued {
            return Ok(Refund { refund_id });
        }
        let refund_id = self.issue(key, format!("re_{}", uuid::Uuid::new_v4().simple())).await?;
        Ok(Refund { refund_id })
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, PaymentError> {
        self.bad_day("find_charge").await?;
        let item = crate::dynamo::get(&self.client, &self.table, "idempotencyKey", idempotency_key)
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        let is_charge = item.get("kind").and_then(|v| v.as_s().ok()).is_some_and(|k| k == "charge");
        Ok(item.get("id").and_then(|v| v.as_s().ok()).filter(|_| is_charge).map(|id| Charge { charge_id: id.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_provider_blip_is_retried_on_the_spot_but_only_so_often() {
        let calls = AtomicU32::new(0);
        let flaky = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 { Err(PaymentError::Unavailable("blip".into())) } else { Ok(n) }
        };
        assert_eq!(persistently(3, flaky).await.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let down = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>(PaymentError::Unavailable("down".into()))
        };
        assert!(matches!(persistently(3, down).await, Err(PaymentError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "bounded");

        // A decline is an answer, not a blip: never repeated.
        calls.store(0, Ordering::SeqCst);
        let declined = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>(PaymentError::Declined { code: "no".into() })
        };
        assert!(matches!(persistently(3, declined).await, Err(PaymentError::Declined { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
