//! The publisher Lambda: task table stream → `TaskStatusChanged` events on the bus.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use taskflow_publisher::{bus::EventBridgeBus, Publisher};
use taskflow_shared::{clients, config, telemetry};
use tracing::{info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("publisher"));
    let aws = clients::load().await;
    let publisher = Arc::new(Publisher { bus: EventBridgeBus::new(&aws, config::required("EVENT_BUS_NAME")?) });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let (publisher, telemetry) = (publisher.clone(), telemetry.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            // An error fails the whole batch: the event source mapping retries it (bounded), and
            // the same records announce the same event ids.
            let published = publisher.relay(&event.payload).await;
            telemetry.flush();
            let published = published?;
            info!(records = event.payload.records.len(), published, "status events published");
            Ok::<(), lambda_runtime::Error>(())
        }
        .instrument(invocation)
    }))
    .await
}
