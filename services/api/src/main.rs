//! The API Lambda: API Gateway HTTP API (payload 2.0) events → the caller's orders and tasks.
//! The JWT was checked before the event exists; the caller is its `sub` claim.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;
use taskflow_api::{bus::EventBridgeOrders, cancel::Cancels, Api, Answer, Route};
use taskflow_shared::{clients, config, executions::StepFunctionsExecutions, tasks::DynamoTaskStore, telemetry};
use tracing::{info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("api"));
    let aws = clients::load().await;
    let api = Arc::new(Api {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        bus: EventBridgeOrders::new(&aws, config::required("EVENT_BUS_NAME")?),
    });
    let cancels = Arc::new(Cancels {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        executions: StepFunctionsExecutions::new(&aws),
        purchase_workflow: config::required("PURCHASE_WORKFLOW_ARN")?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (api, cancels, telemetry) = (api.clone(), cancels.clone(), telemetry.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            let request = event.payload;
            let route_key = request["routeKey"].as_str().unwrap_or_default().to_string();
            let span = telemetry::continue_trace("api", request["headers"]["x-amzn-trace-id"].as_str());
            let answer = async {
                let caller = request["requestContext"]["authorizer"]["jwt"]["claims"]["sub"].as_str().unwrap_or_default();
                let order_id = request["pathParameters"]["orderId"].as_str();
                let body = request_body(&request);
                let answer = match Route::from_key(&route_key, order_id) {
                    None if route_key == taskflow_api::cancel::ROUTE => cancels.handle(caller, order_id.unwrap_or_default()).await,
                    Some(route) => api.handle(route, caller, body.as_deref()).await,
                    None => Answer { status: 404, body: json!({"error": "NotFound", "message": format!("no route {route_key}")}) },
                };
                info!(route = route_key.as_str(), status = answer.status, "request answered");
                answer
            }
            .instrument(span)
            .await;
            telemetry.flush();
            Ok::<_, lambda_runtime::Error>(json!({
                "statusCode": answer.status,
                "headers": {"content-type": "application/json"},
                "body": answer.body.to_string(),
                "isBase64Encoded": false,
            }))
        }
        .instrument(invocation)
    }))
    .await
}

/// The request body as text (API Gateway base64-encodes bodies it does not take for text).
fn request_body(request: &Value) -> Option<String> {
    let body = request["body"].as_str()?;
    if request["isBase64Encoded"].as_bool() == Some(true) {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
        return String::from_utf8(bytes).ok();
    }
    Some(body.to_string())
}
