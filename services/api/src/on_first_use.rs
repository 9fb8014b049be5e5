//! The API's adapters other than the task table's are built on a route's first use
//! ([`OnFirstUse`], from `taskflow_shared::on_first_use`, which says why): every route reads
//! DynamoDB, and a request uses one or two of the four services (`POST /orders` EventBridge, the
//! log and attachment routes S3, cancelling and the operators' decisions Step Functions).

use async_trait::async_trait;
use serde_json::Value;
pub use taskflow_shared::on_first_use::OnFirstUse;

use crate::{BusError, OrderBus};

#[async_trait]
impl<B: OrderBus> OrderBus for OnFirstUse<B> {
    async fn submit(&self, detail: &Value) -> Result<(), BusError> {
        self.get().submit(detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

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
    async fn the_bus_is_built_once_on_the_first_submission_and_not_before() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let bus = OnFirstUse::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            RecordingBus::default()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 0, "built at construction");
        bus.submit(&serde_json::json!({"orderId": "a"})).await.unwrap();
        bus.submit(&serde_json::json!({"orderId": "b"})).await.unwrap();
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        let submitted: Vec<_> = bus.get().0.lock().unwrap().iter().map(|d| d["orderId"].clone()).collect();
        assert_eq!(submitted, vec!["a", "b"], "every call reaches the one adapter");
    }
}
