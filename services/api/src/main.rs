//! The API Lambda: API Gateway HTTP API (payload 2.0) events → the caller's orders and tasks.
//! The JWT was checked before the event exists; the caller is its `sub` claim.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;
use taskflow_api::attachments::{AttachmentRoute, AttachmentsApi, S3Presigner};
use taskflow_api::operators::{self, OperatorRoute, Operators};
use taskflow_api::on_first_use::OnFirstUse;
use taskflow_api::{bus::EventBridgeOrders, cancel::Cancels, Api, Answer, Route};
use taskflow_shared::tasklog::S3TaskLogs;
use taskflow_shared::{approvals::DynamoApprovalStore, callback::StepFunctionsCallback, clients, config, executions::StepFunctionsExecutions, tasks::DynamoTaskStore, telemetry};
use tracing::{info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("api"));
    let aws = Arc::new(clients::shared().await);
    // Every route reads the task table: its client is built at init. The adapters of the other
    // services are built on a route's first use (`on_first_use`: a request needs one or two of
    // the four services); their settings are read and checked here, so a missing one fails init.
    let (task_table, bus_name, task_bucket) = (config::required("TASK_TABLE")?, config::required("EVENT_BUS_NAME")?, config::required("TASK_BUCKET")?);
    let (approval_table, purchase_workflow) = (config::required("APPROVAL_TABLE")?, config::required("PURCHASE_WORKFLOW_ARN")?);
    let max_bytes = config::number_or("ATTACHMENT_MAX_BYTES", taskflow_contracts::attachment::DEFAULT_MAX_BYTES)?;
    let max_per_task = config::number_or("MAX_ATTACHMENTS_PER_TASK", taskflow_contracts::attachment::DEFAULT_MAX_PER_TASK)?;
    let api = Arc::new(Api {
        tasks: DynamoTaskStore::new(&*aws, task_table.clone()),
        bus: OnFirstUse::new({
            let aws = aws.clone();
            move || EventBridgeOrders::new(&*aws, bus_name)
        }),
        logs: OnFirstUse::new({
            let (aws, task_bucket) = (aws.clone(), task_bucket.clone());
            move || S3TaskLogs::new(&*aws, task_bucket)
        }),
    });
    let attachments = Arc::new(OnFirstUse::new({
        let (aws, task_table) = (aws.clone(), task_table.clone());
        move || AttachmentsApi { tasks: DynamoTaskStore::new(&*aws, task_table), presigner: S3Presigner::new(&*aws, task_bucket), max_bytes, max_per_task }
    }));
    let operators = Arc::new(OnFirstUse::new({
        let (aws, task_table) = (aws.clone(), task_table.clone());
        move || Operators { tasks: DynamoTaskStore::new(&*aws, task_table), approvals: DynamoApprovalStore::new(&*aws, approval_table), callback: StepFunctionsCallback::new(&*aws) }
    }));
    let cancels = Arc::new(OnFirstUse::new({
        let aws = aws.clone();
        move || Cancels { tasks: DynamoTaskStore::new(&*aws, task_table), executions: StepFunctionsExecutions::new(&*aws), purchase_workflow }
    }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (api, attachments, operators, cancels, telemetry) = (api.clone(), attachments.clone(), operators.clone(), cancels.clone(), telemetry.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            let request = event.payload;
            let route_key = request["routeKey"].as_str().unwrap_or_default().to_string();
            let span = telemetry::continue_trace("api", request["headers"]["x-amzn-trace-id"].as_str());
            let answer = async {
                let claims = &request["requestContext"]["authorizer"]["jwt"]["claims"];
                let caller = claims["sub"].as_str().unwrap_or_default();
                let order_id = request["pathParameters"]["orderId"].as_str();
                let body = request_body(&request);
                let attachment_id = request["pathParameters"]["attachmentId"].as_str();
                let query = if request["queryStringParameters"].is_object() { request["queryStringParameters"].clone() } else { json!({}) };
                let answer = match (
                    OperatorRoute::from_key(&route_key, order_id, &query),
                    Route::from_key(&route_key, order_id),
                    AttachmentRoute::from_key(&route_key, order_id, attachment_id),
                ) {
                    (Some(route), _, _) => operators.get().handle(route, caller, &operators::groups(claims.get("cognito:groups")), &query, body.as_deref()).await,
                    (None, Some(route), _) => api.handle(route, caller, body.as_deref()).await,
                    (None, None, Some(route)) => attachments.get().handle(route, caller, body.as_deref()).await,
                    (None, None, None) if route_key == taskflow_api::cancel::ROUTE => cancels.get().handle(caller, order_id.unwrap_or_default()).await,
                    (None, None, None) => Answer { status: 404, body: json!({"error": "NotFound", "message": format!("no route {route_key}")}) },
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
