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
