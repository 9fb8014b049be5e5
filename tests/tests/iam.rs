//! Every AWS call is checked against the caller's role, as on AWS: this test binary deploys the
//! template with single grants taken out of function roles, drives the paths that need them,
//! and shows each refused with AccessDenied naming the function, the action and the resource —
//! and the path not completing — while the calls the roles still grant go through.

use std::time::{Duration, Instant};
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{http, iam_denials, log_dir, order_id, purchase, stack_with, token, Run};

/// The grants taken out for this binary's stack (`ROLE:service:Action:RESOURCE`).
const REMOVED: [&str; 4] = [
    // The compensation's read of what was charged (the refund function's find_charge).
    "RefundFunctionRole:dynamodb:GetItem:SandboxChargesTable",
    // The HTTP API's listing of an owner's tasks (a Query of the byOwner index).
    "ApiFunctionRole:dynamodb:Query:TaskTable",
    // The purchase workflow's own send of the owner's notice (its NotifyOwner step).
    "PurchaseWorkflowRole:sqs:SendMessage:NotificationQueue",
    // The intake's spans to the X-Ray OTLP endpoint (the intake runs for every order; the
    // notification does not, here: the purchase workflow cannot send it work).
    "IntakeFunctionRole:xray:PutSpans",
];

fn stack() -> &'static taskflow::stack::StackInfo {
    stack_with(|options| options.remove_grants = REMOVED.iter().map(|g| g.to_string()).collect())
}

/// Waits (at most `within`) for a denial of `action` to `function` on a resource ending with
/// `resource_suffix`.
async fn denial(function: &str, action: &str, resource_suffix: &str, within: Duration) -> serde_json::Value {
    denial_to("function", function, action, resource_suffix, within).await
}

/// The same for a caller of `kind` (`function` or `stateMachine`).
async fn denial_to(kind: &str, name: &str, action: &str, resource_suffix: &str, within: Duration) -> serde_json::Value {
    let (function, kind) = (name, kind);
    let started = Instant::now();
    loop {
        let found = iam_denials().await.into_iter().find(|d| {
            d[kind] == function && d["action"] == action && d["resource"].as_str().is_some_and(|r| r.ends_with(resource_suffix))
        });
        if let Some(found) = found {
            return found;
        }
        assert!(started.elapsed() < within, "no denial of {action} on …{resource_suffix} to {function} within {within:?}: {:?}", iam_denials().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compensation_without_the_read_of_the_charges_is_denied_and_the_money_stays_owed() {
    stack();
    let run = Run::new().await;
    let scarce = run.new_sku("RARE", 1, 25000).await;
    let id = order_id("iam-oos");
    // Out of stock after the charge: the purchase fails and its compensation must refund.
    run.submit(purchase(&id, "frank", &[(&scarce, 2, 25000)], "tok_approve")).await;

    let found = denial("taskflow-local-refund", "dynamodb:GetItem", ":table/taskflow-local-sandbox-charges", Duration::from_secs(90)).await;
    let principal = found["principal"].as_str().unwrap();
    assert!(principal.starts_with("arn:aws:sts::123456789012:assumed-role/") && principal.contains("RefundFunctionRole"), "{principal}");
    assert!(principal.ends_with("/taskflow-local-refund"), "the session is the function: {principal}");
    assert_eq!(found["enforced"], true);

    // The refund function got AWS's answer, naming the action and the resource (it takes it for
    // the provider being unavailable, and retries).
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(log_dir().join("refund.log")).unwrap_or_default();
        let seen = log.lines().any(|l| l.contains("AccessDenied") && l.contains("dynamodb:GetItem") && l.contains("taskflow-local-sandbox-charges"));
        if seen {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the refund function's log shows no AccessDenied: {log}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The path did not complete: the charge was taken and never refunded; the task is not closed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let task = run.task(&id).await;
    assert_eq!(task.status, TaskStatus::Refunding, "the order waits for money it is owed: {task:?}");
    let (charges, charged, refunds, refunded) = run.provider(&id).await;
    assert_eq!((charges, charged, refunds, refunded), (1, 50_000, 0, 0), "charged, and nothing refunded");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_tasks_without_query_on_the_owner_index_is_denied_and_reading_one_still_works() {
    stack();
    let bearer = token("iam-owner", 300);
    // Granted: GetItem on the task table (a task that does not exist is 404, like another owner's).
    let (status, _) = http("GET", &format!("/tasks/{}", order_id("none")), Some(&bearer), None).await;
    assert_eq!(status, 404);
    // Removed: Query on the byOwner index.
    let (status, body) = http("GET", "/tasks", Some(&bearer), None).await;
    assert!(status >= 500, "listing cannot be served without its grant: {status} {body}");
    let found = denial("taskflow-local-api", "dynamodb:Query", ":table/taskflow-local-tasks/index/byOwner", Duration::from_secs(10)).await;
    assert!(found["principal"].as_str().unwrap().contains("ApiFunctionRole"), "{found}");
    // Nothing else was refused to the API function: the other calls are granted.
    let others: Vec<_> = iam_denials().await.into_iter().filter(|d| d["function"] == "taskflow-local-api" && d["action"] != "dynamodb:Query").collect();
    assert!(others.is_empty(), "{others:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_without_its_send_to_the_notification_queue_is_denied_and_no_receipt_is_written() {
    stack();
    let run = Run::new().await;
    let sku = run.new_sku("BOOK", 10, 1250).await;
    let id = order_id("iam-notify");
    run.submit(purchase(&id, "grace", &[(&sku, 1, 1250)], "tok_approve")).await;
    // Step Functions sends the NotifyOwner message with the workflow's execution role.
    let found = denial_to("stateMachine", "taskflow-local-purchase", "sqs:SendMessage", ":taskflow-local-notification", Duration::from_secs(90)).await;
    assert!(found["principal"].as_str().unwrap().contains("PurchaseWorkflowRole"), "{found}");
    // The purchase itself went through (its grants are intact); the owner was never told.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (charges, charged, _, _) = run.provider(&id).await;
    assert_eq!((charges, charged), (1, 1250));
    assert!(run.outbox("grace", &id).await.is_empty(), "no notice without the notification step");
    let task = run.task(&id).await;
    assert!(task.receipts.is_empty(), "no receipt: {task:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_from_a_role_without_xray_putspans_are_refused_and_the_order_still_completes() {
    stack();
    let run = Run::new().await;
    let sku = run.new_sku("SPANS", 5, 500).await;
    let id = order_id("iam-spans");
    run.submit(purchase(&id, "gina", &[(&sku, 1, 500)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    // (Completed or failed by the other grants this stack lacks: what matters is that it ends.)
    assert!(events.last().unwrap().status.is_terminal(), "losing spans never costs the order its end: {events:?}");

    // The local OTLP endpoint had the signed caller checked: the intake's role lacks it.
    let found = denial("taskflow-local-intake", "xray:PutSpans", "*", Duration::from_secs(30)).await;
    let principal = found["principal"].as_str().unwrap();
    assert!(principal.contains("IntakeFunctionRole") && principal.ends_with("/taskflow-local-intake"), "{principal}");
    // The roles that keep the grant export as before.
    let others: Vec<_> = iam_denials().await.into_iter().filter(|d| d["action"] == "xray:PutSpans" && d["function"] != "taskflow-local-intake").collect();
    assert!(others.is_empty(), "{others:?}");
}
