//! Side effects done once, whatever the deliveries: the Powertools idempotency pattern.
//!
//! Before a side effect (a charge, a refund, a reservation, a notice) its key — derived from the
//! task, never from the message — is claimed with a conditional write: INPROGRESS with an expiry.
//! When the effect succeeds the record becomes COMPLETE with the stored result, which every later
//! claim gets back instead of doing the work again. A claim that finds the key INPROGRESS and not
//! expired is told to come back later (another delivery is doing it right now); one that finds it
//! expired takes it over (the delivery that held it died). A failed effect releases its claim.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours to do.
    Proceed,
    /// Done before; here is its stored result.
    Done(String),
    /// Someone is doing it now.
    Busy,
}

#[derive(Debug, Error)]
#[error("idempotency store unavailable: {0}")]
pub struct IdempotencyError(pub String);

#[async_trait]
pub trait Idempotency: Send + Sync {
    /// How long a claim holds before another delivery may take it over.
    fn hold(&self) -> Duration {
        HOLD
    }
    async fn claim(&self, key: &str, now: DateTime<Utc>, hold: Duration) -> Result<Claim, IdempotencyError>;
    async fn complete(&self, key: &str, result: &str, now: DateTime<Utc>) -> Result<(), IdempotencyError>;
    async fn release(&self, key: &str) -> Result<(), IdempotencyError>;
}

#[derive(Debug, Error)]
pub enum Once<E> {
    #[error("another delivery is doing {0} right now")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] IdempotencyError),
    #[error(transparent)]
    Effect(E),
}

/// How long a claim holds before another delivery may take it over, unless configured: a little
/// longer than the function timeout, after which its holder is surely gone. Longer would make the
/// redeliveries after a crash find it busy until their retries run out.
pub const HOLD: Duration = Duration::seconds(15);
/// How long a completed record is kept (TTL): longer than any redelivery can come.
pub const KEEP: Duration = Duration::days(7);

/// Runs `effect` at most once for `key`; a repeat gets the first run's result.
pub async fn once<T, E, F>(store: &(impl Idempotency + ?Sized), key: &str, effect: F) -> Result<T, Once<E>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    match store.claim(key, Utc::now(), store.hold()).await? {
        Claim::Done(stored) => {
            return serde_json::from_str(&stored).map_err(|e| Once::Store(IdempotencyError(format!("{key}: stored result unreadable: {e}"))));
        }
        Claim::Busy => return Err(Once::Busy(key.to_string())),
        Claim::Proceed => {}
    }
    match effect.await {
        Ok(value) => {
            let stored = serde_json::to_string(&value).expect("results serialise");
            store.complete(key, &stored, Utc::now()).await?;
            Ok(value)
        }
        Err(e) => {
            // Let the next delivery try again now, rather than after the hold.
            store.release(key).await?;
            Err(Once::Effect(e))
        }
    }
}

pub struct DynamoIdempotency {
    client: aws_sdk_dynamodb::Client,
    table: String,
    hold: Duration,
}

impl DynamoIdempotency {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>, hold: Duration) -> Self {
        Self { client: aws.dynamodb(), table: table.into(), hold }
    }

    /// From `IDEMPOTENCY_TABLE` and `IDEMPOTENCY_HOLD_SECONDS`.
    pub fn from_env(aws: &impl crate::clients::ClientSource) -> Result<Self, crate::config::ConfigError> {
        Ok(Self::new(aws, crate::config::required("IDEMPOTENCY_TABLE")?, hold_from_env()?))
    }
}

/// The hold of a claim from `IDEMPOTENCY_HOLD_SECONDS` ([`HOLD`] when unset): also the hold of a
/// purchase's charge on its task (`TaskRecord::charge_held_until`).
pub fn hold_from_env() -> Result<Duration, crate::config::ConfigError> {
    Ok(Duration::seconds(crate::config::number_or("IDEMPOTENCY_HOLD_SECONDS", HOLD.num_seconds())?))
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> IdempotencyError {
    IdempotencyError(crate::dynamo::describe(&e))
}

fn epoch(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

#[async_trait]
impl Idempotency for DynamoIdempotency {
    fn hold(&self) -> Duration {
        self.hold
    }

    async fn claim(&self, key: &str, now: DateTime<Utc>, hold: Duration) -> Result<Claim, IdempotencyError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(key.into()))
            .item("status", AttributeValue::S("INPROGRESS".into()))
            .item("expiresAt", epoch(now + hold))
            .condition_expression("attribute_not_exists(#key) OR (#status = :inprogress AND expiresAt < :now)")
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inprogress", AttributeValue::S("INPROGRESS".into()))
            .expression_attribute_values(":now", epoch(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Proceed),
            Err(e) if crate::dynamo::conditional_failed(&e) => {
                let item = crate::dynamo::get(&self.client, &self.table, "key", key).await.map_err(unavailable)?.unwrap_or_default();
                match (item.get("status").and_then(|s| s.as_s().ok()).map(String::as_str), item.get("result")) {
                    (Some("COMPLETE"), Some(AttributeValue::S(result))) => Ok(Claim::Done(result.clone())),
                    (Some("INPROGRESS"), _) => Ok(Claim::Busy),
                    // Released or expired between the two calls: try again soon.
                    _ => Ok(Claim::Busy),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn complete(&self, key: &str, result: &str, now: DateTime<Utc>) -> Result<(), IdempotencyError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(key.into()))
            .item("status", AttributeValue::S("COMPLETE".into()))
            .item("result", AttributeValue::S(result.into()))
            .item("expiresAt", epoch(now + KEEP))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.into()))
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inprogress", AttributeValue::S("INPROGRESS".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if crate::dynamo::conditional_failed(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The same rules in memory, for unit tests.
#[derive(Default)]
pub struct InMemoryIdempotency {
    /// key → (complete result, or in progress until)
    pub records: Mutex<HashMap<String, Result<String, DateTime<Utc>>>>,
}

#[async_trait]
impl Idempotency for InMemoryIdempotency {
    async fn claim(&self, key: &str, now: DateTime<Utc>, hold: Duration) -> Result<Claim, IdempotencyError> {
        let mut records = self.records.lock().unwrap();
        match records.get(key) {
            Some(Ok(result)) => Ok(Claim::Done(result.clone())),
            Some(Err(until)) if *until >= now => Ok(Claim::Busy),
            _ => {
                records.insert(key.to_string(), Err(now + hold));
                Ok(Claim::Proceed)
            }
        }
    }
    async fn complete(&self, key: &str, result: &str, _now: DateTime<Utc>) -> Result<(), IdempotencyError> {
        self.records.lock().unwrap().insert(key.to_string(), Ok(result.to_string()));
        Ok(())
    }
    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let mut records = self.records.lock().unwrap();
        if matches!(records.get(key), Some(Err(_))) {
            records.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn the_effect_runs_once_and_repeats_get_its_result() {
        let store = InMemoryIdempotency::default();
        let runs = AtomicU32::new(0);
        let effect = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(format!("ch_{}", runs.load(Ordering::SeqCst)))
        };
        let first: String = once(&store, "o-1/charge", effect()).await.unwrap();
        let second: String = once(&store, "o-1/charge", effect()).await.unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("ch_1", "ch_1"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_claim_in_progress_is_busy_until_it_expires_then_taken_over() {
        let store = InMemoryIdempotency::default();
        let now = Utc::now();
        assert_eq!(store.claim("k", now, HOLD).await.unwrap(), Claim::Proceed);
        assert_eq!(store.claim("k", now + Duration::seconds(5), HOLD).await.unwrap(), Claim::Busy);
        assert_eq!(store.claim("k", now + HOLD + Duration::seconds(1), HOLD).await.unwrap(), Claim::Proceed);
    }

    #[tokio::test]
    async fn a_failed_effect_releases_its_claim_for_the_next_delivery() {
        let store = InMemoryIdempotency::default();
        let failed: Result<String, _> = once(&store, "k", async { Err::<String, _>("provider down") }).await;
        assert!(matches!(failed, Err(Once::Effect("provider down"))));
        let retried: String = once(&store, "k", async { Ok::<_, &str>("ok".to_string()) }).await.unwrap();
        assert_eq!(retried, "ok");
    }
}
