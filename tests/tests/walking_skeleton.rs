//! One purchase end to end on the real local stack, and its failure paths. Orders go in through
//! EventBridge as an outside producer sends them; status events come back through each test's own
//! rule and queue.

use std::time::Duration;
use taskflow_contracts::{TaskStatus, TaskStatusChanged};
use taskflow_e2e::{example_entry, order_id, publish, stack, statuses, Run, WAIT};

trait Execution {
    async fn execution_status(&self, order_id: &str) -> Option<String>;
}

impl Execution for Run {
    /// The execution's final status, once it has one (None when there is no execution).
    async fn execution_status(&self, order_id: &str) -> Option<String> {
        let sfn = aws_sdk_sfn::Client::new(&self.aws);
        // The execution is in the workflow of the order's kind, named by its task id.
        let name = self.try_task(order_id).await?.task_id;
        for workflow in ["PurchaseWorkflowArn", "RefundWorkflowArn"] {
            let arn = taskflow_intake::workflows::execution_arn(stack().output(workflow).unwrap(), &name);
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match sfn.describe_execution().execution_arn(&arn).send().await {
                    Ok(out) if out.status.as_str() != "RUNNING" || tokio::time::Instant::now() > deadline => {
                        return Some(out.status.as_str().to_string());
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(_) => break,
                }
            }
        }
        None
    }
}

fn assert_chained(events: &[TaskStatusChanged], order_id: &str) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence as usize, i + 1);
        // Event ids are per task (owner and order id), not per order id alone.
        assert_eq!(event.order_id, order_id, "the order id stays the submitter's");
        assert_eq!(event.event_id, format!("{}#{}", taskflow_contracts::keys::task_id(&event.owner, order_id), i + 1));
        assert_eq!(event.previous_status, i.checked_sub(1).map(|p| events[p].status));
        assert_eq!(event.schema_version, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purchase_completes_with_its_status_events_charge_and_notice() {
    let run = Run::new().await;
    let id = order_id("purchase");
    publish(&run.aws, example_entry("order-submitted.purchase.json", |d| d["orderId"] = id.clone().into())).await;

    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    assert_chained(&events, &id);
    assert!(events.iter().all(|e| e.owner == "alice" && e.reason.is_none()));

    let task = run.task(&id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.amount, 2 * 1250 + 199);
    assert!(task.charge_id.as_deref().is_some_and(|c| c.starts_with("ch_")));
    assert_eq!(run.execution_status(&id).await.as_deref(), Some("SUCCEEDED"));
    // The receipt is recorded on the task once the last step ran.
    let task = run.task(&id).await;
    assert_eq!(task.receipts, vec![format!("receipts/YWxpY2U/{id}/COMPLETED.txt")], "under alice's prefix (base64url of her id)");
    run.assert_balanced(&id).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_payment_ends_failed_with_its_reason() {
    let run = Run::new().await;
    let id = order_id("declined");
    publish(&run.aws, example_entry("order-submitted.declined.json", |d| d["orderId"] = id.clone().into())).await;

    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Failed]);
    assert_chained(&events, &id);
    assert_eq!(events[2].reason.as_deref(), Some("PAYMENT_DECLINED"));
    let task = run.task(&id).await;
    assert_eq!(task.reason_detail.as_deref(), Some("card_declined"));
    assert!(task.charge_id.is_none());
    // A declined card is an outcome the workflow handles (the owner is told), not a broken
    // workflow: the execution succeeds and ExecutionsFailed stays for real breakage.
    assert_eq!(run.execution_status(&id).await.as_deref(), Some("SUCCEEDED"));
    let task = run.task(&id).await;
    assert_eq!(task.receipts, vec![format!("receipts/Ym9i/{id}/FAILED.txt")], "the failure path still notifies (bob's prefix)");
    run.assert_balanced(&id).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_order_is_rejected_with_its_reason_and_starts_no_workflow() {
    let run = Run::new().await;
    let id = order_id("invalid");
    publish(&run.aws, example_entry("order-submitted.purchase.json", |d| {
        d["orderId"] = id.clone().into();
        d["items"] = serde_json::json!([]);
    }))
    .await;

    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Rejected]);
    assert_eq!(events[0].reason.as_deref(), Some("NO_ITEMS"));
    assert_eq!(events[0].previous_status, None);
    let task = run.task(&id).await;
    assert_eq!(task.status, TaskStatus::Rejected);
    assert!(task.execution_arn.is_none() && run.execution_of(&task).is_none());
    assert_eq!(run.execution_status(&id).await, None, "a rejected order starts no execution");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_order_event_published_twice_gives_one_task_one_execution_one_charge() {
    let run = Run::new().await;
    let id = order_id("twice");
    let entry = example_entry("order-submitted.purchase.json", |d| d["orderId"] = id.clone().into());
    publish(&run.aws, entry.clone()).await;
    publish(&run.aws, entry).await;

    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    assert_eq!(run.execution_status(&id).await.as_deref(), Some("SUCCEEDED"));
    // Let the second event drain through intake before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let task = run.task(&id).await;
    assert_eq!(task.history.len(), 3, "one task, moved once through each status");

    let executions = aws_sdk_sfn::Client::new(&run.aws)
        .list_executions()
        .state_machine_arn(stack().output("PurchaseWorkflowArn").unwrap())
        .send()
        .await
        .unwrap()
        .executions;
    assert_eq!(executions.iter().filter(|e| e.name == task.task_id).count(), 1, "one execution, named by the task id");

    let charges = aws_sdk_dynamodb::Client::new(&run.aws)
        .scan()
        .table_name(stack().output("SandboxChargesTableName").unwrap())
        .filter_expression("orderId = :id")
        .expression_attribute_values(":id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(charges.len(), 1, "one charge for the order");
    assert_eq!(charges[0].get("requests").and_then(|r| r.as_n().ok()).map(String::as_str), Some("1"), "the provider was asked once");
    assert_eq!(charges[0].get("id").and_then(|c| c.as_s().ok()), task.charge_id.as_ref());
    run.assert_balanced(&id).await;
    run.close().await;
}
