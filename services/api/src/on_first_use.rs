//! Adapters the API builds the first time a route needs them, not at init.
//!
//! Each AWS SDK service crate parses its endpoint partition table (a JSON document and eight
//! region regexes, ~420 000 instructions: callgrind, 2026-11-30) when its first client is built,
//! and each client costs ~80 000 more. The API talks to four services, but a request uses one or
//! two of them: every route reads DynamoDB, `POST /orders` also EventBridge, the log and
//! attachment routes S3, cancelling and the operators' decisions Step Functions. Built at init,
//! all four are paid before the first poll of every cold start; built on first use, a cold
//! start pays DynamoDB's at init and the others only when (and if) a route of that environment
//! needs them, once, the first time. What an adapter is built from (table and bucket names,
//! workflow ARNs) is still read and checked at init, so a missing setting still fails the init.

use async_trait::async_trait;
use serde_json::Value;
use std::sync::LazyLock;
use taskflow_shared::tasklog::{LogStoreError, TaskLogs, Written};

use crate::{BusError, OrderBus};

/// An adapter of type `A` built by its closure on the first [`OnFirstUse::get`] (once, even
/// when several requests race to it), then kept for the life of the execution environment.
/// The port traits the API uses are implemented for it by delegating to the adapter.
pub struct OnFirstUse<A> {
    adapter: LazyLock<A, Box<dyn FnOnce() -> A + Send>>,
}

impl<A> OnFirstUse<A> {
    /// `build` runs on the first [`get`](Self::get), not here.
    pub fn new(build: impl FnOnce() -> A + Send + 'static) -> Self {
        Self { adapter: LazyLock::new(Box::new(build)) }
    }

    /// The adapter, built now if this is the first call.
    pub fn get(&self) -> &A {
        &self.adapter
    }

    /// Whether the adapter has been built (for tests and logs; never builds it).
    pub fn is_built(&self) -> bool {
        LazyLock::get(&self.adapter).is_some()
    }
}

#[async_trait]
impl<B: OrderBus> OrderBus for OnFirstUse<B> {
    async fn submit(&self, detail: &Value) -> Result<(), BusError> {
        self.get().submit(detail).await
    }
}

#[async_trait]
impl<L: TaskLogs> TaskLogs for OnFirstUse<L> {
    async fn write_once(&self, key: &str, body: &str) -> Result<Written, LogStoreError> {
        self.get().write_once(key, body).await
    }
    async fn read(&self, key: &str) -> Result<Option<String>, LogStoreError> {
        self.get().read(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use taskflow_shared::tasklog::InMemoryTaskLogs;

    #[derive(Default)]
    struct RecordingBus(Mutex<Vec<Value>>);

    #[async_trait]
    impl OrderBus for RecordingBus {
        async fn submit(&self, detail: &Value) -> Result<(), BusError> {
            self.0.lock().unwrap().push(detail.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_adapter_is_built_once_on_first_use_and_not_before() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let bus = OnFirstUse::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            RecordingBus::default()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 0, "built at construction");
        assert!(!bus.is_built());
        bus.submit(&serde_json::json!({"orderId": "a"})).await.unwrap();
        bus.submit(&serde_json::json!({"orderId": "b"})).await.unwrap();
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(bus.is_built());
        let submitted: Vec<_> = bus.get().0.lock().unwrap().iter().map(|d| d["orderId"].clone()).collect();
        assert_eq!(submitted, vec!["a", "b"], "every call reaches the one adapter");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn requests_racing_to_the_first_use_build_one_adapter() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let logs = Arc::new(OnFirstUse::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            InMemoryTaskLogs::default()
        }));
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let logs = logs.clone();
                tokio::spawn(async move { logs.write_once(&format!("logs/{i}.ndjson"), "{}").await })
            })
            .collect();
        for writer in writers {
            assert!(matches!(writer.await.unwrap(), Ok(Written::Created)));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        for i in 0..8 {
            assert_eq!(logs.read(&format!("logs/{i}.ndjson")).await.unwrap().as_deref(), Some("{}"), "write {i} kept by the one store");
        }
    }
}
