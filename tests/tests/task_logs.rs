//! Task logs end to end, on a local stack that delivers every SQS batch twice: a completed, a
//! compensated (out of stock after the charge) and a rejected order each get exactly one log
//! object in S3 (`logs/{owner segment}/{orderId}/{taskId}.jsonl`, SSE), listing every transition
//! in order with the ids of the status events subscribers received, the charge, the refund, the
//! receipt and the execution and trace; a later write of the closed task never changes it; the
//! owner reads it over the HTTP API (another owner gets 404) and with the CLI's client. And the
//! fields the template's Logs Insights queries read are in the functions' log lines.

use std::time::Duration;
use taskflow::local::Faults;
use taskflow_contracts::{TaskStatus, TaskStatusChanged};
use taskflow_e2e::{http, iam_denials, log_dir, order_id, purchase, stack, stack_with, statuses, token, Run};
use taskflow_shared::tasklog::{self, LogLine};
use taskflow_shared::tasks::TaskRecord;

fn bucket() -> String {
    stack().output("TaskBucketName").unwrap().to_string()
}

/// Waits for the task's log object; returns its key, its text and how many versions it has.
async fn log_of(run: &Run, task: &TaskRecord) -> (String, String, usize) {
    let s3 = aws_sdk_s3::Client::new(&run.aws);
    let key = tasklog::key(task).unwrap();
    for _ in 0..300 {
        if let Ok(object) = s3.get_object().bucket(bucket()).key(&key).send().await {
            assert_eq!(object.server_side_encryption().map(|s| s.as_str()), Some("AES256"), "{key} is encrypted at rest");
            let text = String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
            let versions = s3.list_object_versions().bucket(bucket()).prefix(&key).send().await.unwrap();
            return (key, text, versions.versions().len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no task log at {key}");
}

/// The task once the log can be written (terminal, and its receipt noted if a workflow ran).
async fn closed_task(run: &Run, owner: &str, id: &str) -> TaskRecord {
    for _ in 0..300 {
        if let Some(task) = run.task_of(owner, id).await {
            if tasklog::ready(&task) {
                return task;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{owner}'s {id} never closed");
}

/// Checks a log against the task and the events subscribers got; returns its lines.
fn check(text: &str, task: &TaskRecord, events: &[TaskStatusChanged]) -> Vec<LogLine> {
    assert!(text.ends_with('\n'), "JSON Lines");
    let lines = tasklog::parse(text).unwrap();
    let LogLine::Task { task_id, order_id, owner, status, .. } = &lines[0] else { panic!("first line: {:?}", lines[0]) };
    assert_eq!((task_id, order_id, owner, *status), (&task.task_id, &task.order_id, &task.owner, task.status));
    let transitions: Vec<(TaskStatus, String)> = lines
        .iter()
        .filter_map(|l| match l {
            LogLine::Transition { status, event_id, .. } => Some((*status, event_id.clone())),
            _ => None,
        })
        .collect();
    // Every transition, in order, with the id of the event subscribers received for it.
    let announced: Vec<(TaskStatus, String)> = events.iter().map(|e| (e.status, e.event_id.clone())).collect();
    assert_eq!(transitions, announced, "{text}");
    assert!(matches!(lines.last(), Some(LogLine::Attachments { attachments }) if attachments.is_empty()));
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn completed_compensated_and_rejected_orders_each_have_one_log_under_duplicate_deliveries() {
    stack_with(|options| options.faults = Faults { duplicate_deliveries: true, ..Faults::default() });
    let run = Run::new().await;
    let owner = format!("logs-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let book = run.new_sku("LOGBOOK", 10, 1250).await;
    let rare = run.new_sku("LOGRARE", 1, 25000).await;
    let (done, compensated, rejected) = (order_id("log-done"), order_id("log-oos"), order_id("log-rejected"));
    run.submit(purchase(&done, &owner, &[(&book, 2, 1250)], "tok_approve")).await;
    run.submit(purchase(&compensated, &owner, &[(&book, 1, 1250), (&rare, 2, 25000)], "tok_approve")).await;
    run.submit(purchase(&rejected, &owner, &[("NO-SUCH-SKU", 1, 100)], "tok_approve")).await;
    let all = run.all_until_terminal(&[done.clone(), compensated.clone(), rejected.clone()]).await;

    // Completed: RECEIVED, CHARGING, COMPLETED; the charge, the receipt, the execution, the trace.
    let task = closed_task(&run, &owner, &done).await;
    let (key, text, versions) = log_of(&run, &task).await;
    assert_eq!(versions, 1, "written once");
    assert!(key.starts_with("logs/") && key.ends_with(&format!("/{done}/{}.jsonl", task.task_id)), "{key}");
    assert_eq!(statuses(&all[&done]), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    let lines = check(&text, &task, &all[&done]);
    let LogLine::Task { execution_arn, trace_id, amount, .. } = &lines[0] else { unreachable!() };
    assert!(execution_arn.as_deref().is_some_and(|a| a.ends_with(&task.task_id)), "{execution_arn:?}");
    assert_eq!((trace_id, *amount), (&task.trace_id, 2500));
    assert!(trace_id.is_some());
    assert!(lines.contains(&LogLine::Charge { charge_id: task.charge_id.clone().unwrap(), amount: 2500, currency: "EUR".into() }));
    assert!(lines.contains(&LogLine::Receipts { keys: task.receipts.clone() }) && task.receipts.len() == 1, "{text}");

    // Compensated: the charge and the refund of all of it, FAILED OUT_OF_STOCK.
    let task = closed_task(&run, &owner, &compensated).await;
    let (_, text, versions) = log_of(&run, &task).await;
    assert_eq!(versions, 1);
    assert_eq!(
        statuses(&all[&compensated]),
        [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Refunding, TaskStatus::Failed]
    );
    let lines = check(&text, &task, &all[&compensated]);
    assert!(lines.contains(&LogLine::Charge { charge_id: task.charge_id.clone().unwrap(), amount: 51_250, currency: "EUR".into() }));
    assert!(lines.contains(&LogLine::Refund { refund_id: task.refund_id.clone().unwrap(), amount: 51_250, currency: "EUR".into() }));
    assert!(text.contains("\"reason\":\"OUT_OF_STOCK\""), "{text}");

    // Rejected at intake: one transition, no workflow, no money.
    let task = closed_task(&run, &owner, &rejected).await;
    let (rejected_key, text, versions) = log_of(&run, &task).await;
    assert_eq!(versions, 1);
    let lines = check(&text, &task, &all[&rejected]);
    assert_eq!(lines.len(), 1 + 1 + 2, "task, one transition, receipts, attachments: {text}");
    assert!(text.contains("UNKNOWN_SKU"));

    // A later write of a closed task (here: an operator's edit of its detail) reaches the
    // publisher, whose rewrite is refused: the log stays as it was, one version.
    let dynamo = aws_sdk_dynamodb::Client::new(&run.aws);
    dynamo
        .update_item()
        .table_name(stack().output("TaskTableName").unwrap())
        .key("taskId", aws_sdk_dynamodb::types::AttributeValue::S(task.task_id.clone()))
        .update_expression("SET reasonDetail = :d")
        .expression_attribute_values(":d", aws_sdk_dynamodb::types::AttributeValue::S("edited later".into()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, again, versions) = log_of(&run, &task).await;
    assert_eq!((again.as_str(), versions), (text.as_str(), 1), "a closed task's log never changes");

    // The owner reads it over the HTTP API; nobody else can, not even by knowing the order id.
    let (status, answer) = http("GET", &format!("/tasks/{done}/log"), Some(&token(&owner, 600)), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["lines"][0]["orderId"], done.as_str());
    assert_eq!(answer["lines"][3]["status"], "COMPLETED");
    let (status, answer) = http("GET", &format!("/tasks/{done}/log"), Some(&token("mallory", 600)), None).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("NotFound")), "{answer}");
    let (status, _) = http("GET", &format!("/tasks/{done}/log"), None, None).await;
    assert_eq!(status, 401);

    // And with the CLI's client (`taskflow log ORDER_ID --owner …`).
    let client = taskflow::client::Client::connect(stack()).await.unwrap();
    let (key, text) = client.task_log(Some(&owner), &rejected).await.unwrap();
    assert_eq!(key, rejected_key);
    assert!(text.contains("UNKNOWN_SKU"));
    assert!(client.task_log(Some("mallory"), &rejected).await.is_err());

    // The fields the template's Logs Insights queries read are in the function logs.
    let purchase_log = std::fs::read_to_string(log_dir().join("purchase.log")).unwrap();
    let charged: Vec<serde_json::Value> = purchase_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "charged" && l["order_id"] == done.as_str())
        .collect();
    assert!(!charged.is_empty(), "slowest-charges reads message = \"charged\" lines");
    assert!(charged[0]["charge_ms"].is_u64() && charged[0]["charge_id"].is_string() && charged[0]["level"].is_string());
    let failed_lines = std::fs::read_dir(log_dir())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .flat_map(|text| text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect::<Vec<_>>())
        .filter(|l| l["order_id"] == compensated.as_str() && l["error"].is_string() && l["function"].is_string())
        .count();
    assert!(failed_lines > 0, "errors-by-reason reads error, function and order_id");
    // The publisher's PutObject on logs/ and the API's GetObject are granted (and nothing else
    // was refused).
    assert_eq!(iam_denials().await, Vec::<serde_json::Value>::new());
    run.close().await;
}
