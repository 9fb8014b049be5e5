//! The order bus adapter: EventBridge, as any other producer of orders.

use crate::{BusError, OrderBus};
use async_trait::async_trait;
use serde_json::Value;
use taskflow_contracts::{ORDER_SOURCE, ORDER_SUBMITTED};

pub struct EventBridgeOrders {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeOrders {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bus_name: impl Into<String>) -> Self {
        Self { client: aws_sdk_eventbridge::Client::new(aws.sdk_config()), bus_name: bus_name.into() }
    }
}

#[async_trait]
impl OrderBus for EventBridgeOrders {
    async fn submit(&self, detail: &Value) -> Result<(), BusError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(ORDER_SOURCE)
            .detail_type(ORDER_SUBMITTED)
            .detail(detail.to_string())
            // The intake continues this request's trace.
            .set_trace_header(taskflow_shared::telemetry::current_header())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| BusError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string()))?;
        if out.failed_entry_count > 0 {
            let why = out.entries().first().and_then(|e| e.error_message()).unwrap_or("rejected").to_string();
            return Err(BusError(why));
        }
        Ok(())
    }
}
