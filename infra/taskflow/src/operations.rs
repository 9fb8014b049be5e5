//! Operators' and owners' commands on a running stack: cancel an order, sweep now, redrive a
//! failed execution.

use crate::stack::StackInfo;
use anyhow::{bail, Context, Result};
use aws_sdk_sfn::error::ProvideErrorMetadata;
use serde_json::{json, Value};
use taskflow_contracts::{ORDER_CANCELLED, ORDER_SOURCE, SCHEMA_VERSION};
use taskflow_shared::tasks::TaskRecord;

/// Publishes an `OrderCancelled` event for `owner`'s order, as any producer would.
pub async fn request_cancel(stack: &StackInfo, owner: &str, order_id: &str) -> Result<()> {
    let aws = stack.sdk_config().await;
    let detail = json!({"schemaVersion": SCHEMA_VERSION, "orderId": order_id, "owner": owner});
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(stack.output("EventBusName")?)
        .source(ORDER_SOURCE)
        .detail_type(ORDER_CANCELLED)
        .detail(detail.to_string())
        .build();
    let out = aws_sdk_eventbridge::Client::new(&aws).put_events().entries(entry).send().await.context("publishing the cancel")?;
    if out.failed_entry_count > 0 {
        bail!("the bus refused the cancel: {:?}", out.entries);
    }
    Ok(())
}

/// Runs a sweep now and returns its report. Locally the host runs the sweeper's schedule on
/// request (`schedules`); on AWS, invoke the function (`aws lambda invoke --function-name
/// taskflow-<stage>-sweeper`): its schedule runs it anyway.
pub async fn sweep_now(stack: &StackInfo) -> Result<Value> {
    let Ok(control) = stack.output(crate::local::CONTROL_URL_OUTPUT) else {
        bail!("this stack is not a local one: its sweeper runs on its schedule; to sweep now, `aws lambda invoke --function-name <stack's sweeper> report.json`");
    };
    crate::schedules::run(control, "SweeperFunction").await
}

/// What `taskflow redrive` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// Step Functions redrove the execution from its failed state (`redriveDate`).
    Redriven { execution_arn: String, redrive_date: String },
}

/// Redrives the failed execution of a task (`RedriveExecution`, AWS Step Functions, Standard
/// workflows, within 14 days of its failure): the execution restarts from its failed state, with
/// the same name, input and task tokens of the steps that succeeded — so every effect stays
/// keyed as before. Only a FAILED, TIMED_OUT or ABORTED execution can be redriven (Step Functions
/// answers `ExecutionNotRedrivable` otherwise; checked here first, by name).
///
/// The local emulator (moto 5.2.5) does not implement `RedriveExecution`: on a local stack this
/// refuses with that reason rather than start a second execution under another name (which
/// would break "one execution per task, named by its task id"). A stuck task is finished by the
/// sweeper instead (`taskflow sweep`).
pub async fn redrive(stack: &StackInfo, task: &TaskRecord) -> Result<Redriven> {
    let Some(arn) = stack.workflows()?.execution_of(task) else { bail!("the task of {} has no execution (it never started one)", task.order_id) };
    let aws = stack.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&aws);
    let described = sfn.describe_execution().execution_arn(&arn).send().await.with_context(|| format!("reading execution {arn}"))?;
    let status = described.status.as_str().to_string();
    if !matches!(status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
        bail!("ExecutionNotRedrivable: execution {arn} is {status}; only a FAILED, TIMED_OUT or ABORTED execution can be redriven");
    }
    if stack.endpoint.is_some() {
        bail!(
            "RedriveNotEmulated: the local emulator (moto 5.2.5) does not implement Step Functions RedriveExecution; execution {arn} is {status}. \
             Nothing was started. On AWS this command redrives it from its failed state; locally `taskflow sweep` finishes a task left in flight."
        );
    }
    match sfn.redrive_execution().execution_arn(&arn).client_token(format!("{}-redrive", task.task_id)).send().await {
        Ok(out) => Ok(Redriven::Redriven { execution_arn: arn, redrive_date: out.redrive_date.to_string() }),
        Err(e) => bail!("{}: {}", e.as_service_error().and_then(|e| e.code()).unwrap_or("RedriveFailed"), aws_sdk_sfn::error::DisplayErrorContext(&e)),
    }
}

/// One HTTP/1.1 exchange with a loopback HTTP endpoint (the local API): (status, JSON body).
pub async fn http(base_url: &str, method: &str, path: &str, bearer: Option<&str>) -> Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base_url.strip_prefix("http://").context("a loopback http:// URL")?.trim_end_matches('/');
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n");
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))))
}
