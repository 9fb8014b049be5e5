//! Operators' tools end to end on the real local stack: an owner's cancellation (HTTP API and
//! bus), a cancel racing the charge, and the sweeper finishing a compensation the payment
//! provider's outage left unfinished (and leaving healthy work alone).
//!
//! One stack for the file, with `SweepMinAgeSeconds=0` (a sweep looks at every task in flight),
//! `WorkerMaxReceiveCount=3` (a compensation gives up after 3 deliveries, not 5) and the sandbox
//! provider's outage switch (`SANDBOX_OUTAGE_FILE`: refunds fail while the file exists).

use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use taskflow_contracts::{Reason, TaskStatus};
use taskflow_e2e::{cancel_event, http, order_id, purchase, stack_with, statuses, sweep_now, token, Run};

fn outage_file() -> PathBuf {
    std::env::temp_dir().join(format!("taskflow-e2e-outage-{}", std::process::id()))
}

fn start() {
    stack_with(|options| {
        options.parameters.insert("SweepMinAgeSeconds".into(), "0".into());
        options.parameters.insert("WorkerMaxReceiveCount".into(), "3".into());
        options.extra_env.insert("SANDBOX_OUTAGE_FILE".into(), outage_file().display().to_string());
    });
}

async fn execution_status(run: &Run, arn: &str) -> String {
    aws_sdk_sfn::Client::new(&run.aws).describe_execution().execution_arn(arn).send().await.unwrap().status.as_str().to_string()
}

/// Polls until `pred` holds for the task (or panics after 60 s).
async fn task_until(run: &Run, owner: &str, id: &str, what: &str, pred: impl Fn(&taskflow_shared::tasks::TaskRecord) -> bool) -> taskflow_shared::tasks::TaskRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(task) = run.task_of(owner, id).await {
            if pred(&task) {
                return task;
            }
            assert!(Instant::now() < deadline, "{id}: never {what}: {:?} {:?}", task.status, task.history);
        }
        assert!(Instant::now() < deadline, "{id}: never recorded");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

fn line_of<'a>(report: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    report["tasks"].as_array().into_iter().flatten().find(|l| l["orderId"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cancels_a_purchase_before_its_charge_over_http() {
    start();
    let run = Run::new().await;
    let sku = run.new_sku("CANCEL", 5, 700).await;
    let owner = format!("carol-{}", &order_id("x")[4..]);
    let bearer = token(&owner, 600);
    // The cancel has to land between intake and the purchase step: usually the first try does;
    // a try the charge wins must then be refused and complete normally.
    let mut cancelled = None;
    let mut taken = 0;
    for _ in 0..6 {
        let id = order_id("cancel");
        run.submit(purchase(&id, &owner, &[(&sku, 2, 700)], "tok_approve")).await;
        task_until(&run, &owner, &id, "recorded", |_| true).await;
        let (status, answer) = http("DELETE", &format!("/orders/{id}"), Some(&bearer), None).await;
        match status {
            200 => {
                assert_eq!((&answer["status"], &answer["cancelled"]), (&json!("CANCELLED"), &json!(true)), "{answer}");
                cancelled = Some(id);
                break;
            }
            409 => {
                assert_eq!(answer["error"], "OrderAlreadyCharged", "{answer}");
                let events = run.events_until_terminal(&id).await;
                assert_eq!(statuses(&events).last(), Some(&TaskStatus::Completed));
                run.assert_balanced(&id).await;
                taken += 2;
            }
            other => panic!("DELETE answered {other} {answer}"),
        }
    }
    let id = cancelled.expect("one of six cancels landed before its charge");
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Cancelled], "one CANCELLED status event");
    assert_eq!(events.last().unwrap().reason.as_deref(), Some(Reason::CancelledByOwner.as_str()));
    let task = run.task_of(&owner, &id).await.unwrap();
    assert!(task.inflight_since.is_none(), "out of the in-flight index");
    // The execution is stopped; whatever step of it was delivered charged nothing.
    let arn = run.execution_of(&task).expect("a workflow ran for the task");
    let deadline = Instant::now() + Duration::from_secs(20);
    while execution_status(&run, &arn).await == "RUNNING" {
        assert!(Instant::now() < deadline, "execution still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(execution_status(&run, &arn).await, "ABORTED");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(run.provider(&id).await, (0, 0, 0, 0), "nothing charged");
    assert!(run.ledger_of(&owner, &id).await.is_none(), "no ledger entry");
    assert_eq!(run.task_of(&owner, &id).await.unwrap().status, TaskStatus::Cancelled);
    // Closed: its audit log is written (no receipt comes for a stopped workflow).
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let (status, answer) = http("GET", &format!("/tasks/{id}/log"), Some(&bearer), None).await;
        if status == 200 {
            break answer;
        }
        assert!(Instant::now() < deadline, "no log for the cancelled order: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(log["lines"][0]["status"], "CANCELLED", "{log}");
    assert_eq!(log["lines"][0]["reason"], "CANCELLED_BY_OWNER", "{log}");

    // Again: idempotent. Another owner: 404 like a missing order. An unknown id: 404.
    let (status, answer) = http("DELETE", &format!("/orders/{id}"), Some(&bearer), None).await;
    assert_eq!((status, &answer["cancelled"]), (200, &json!(false)), "{answer}");
    let (status, answer) = http("DELETE", &format!("/orders/{id}"), Some(&token("mallory", 600)), None).await;
    assert_eq!((status, &answer["error"]), (404, &json!("OrderNotFound")), "{answer}");
    assert_eq!(http("DELETE", "/orders/no-such-order", Some(&bearer), None).await.0, 404);
    assert_eq!(http("DELETE", &format!("/orders/{id}"), None, None).await.0, 401);
    // Stock: untouched by the cancelled order (5, less what any order the charge won took).
    assert_eq!(run.available(&sku).await, 5 - taken);
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_racing_charges_end_in_one_outcome_with_money_and_stock_balanced() {
    start();
    let run = Run::new().await;
    let rounds = 6;
    let sku = run.new_sku("RACE", 100, 300).await;
    let owner = format!("dave-{}", &order_id("x")[4..]);
    let mut ids = Vec::new();
    for round in 0..rounds {
        let id = order_id("race");
        run.submit(purchase(&id, &owner, &[(&sku, 3, 300)], "tok_approve")).await;
        // At varied moments: before intake, between intake and the charge, during, after.
        tokio::time::sleep(Duration::from_millis(120 * round as u64)).await;
        cancel_event(&owner, &id).await;
        // A duplicate delivery of the cancel changes nothing.
        if round % 2 == 0 {
            cancel_event(&owner, &id).await;
        }
        ids.push(id);
    }
    let all = run.all_until_terminal(&ids).await;
    let mut taken = 0;
    let mut outcomes = (0, 0);
    for id in &ids {
        let events = &all[id];
        let last = events.last().unwrap().status;
        assert_eq!(events.iter().filter(|e| e.status.is_terminal()).count(), 1, "{id}: one outcome: {:?}", statuses(events));
        run.assert_balanced(id).await;
        let (charges, charged, _, refunded) = run.provider(id).await;
        match last {
            TaskStatus::Cancelled => {
                outcomes.0 += 1;
                assert_eq!((charges, charged), (0, 0), "{id}: a cancelled order is never charged");
                assert!(run.ledger_of(&owner, id).await.is_none(), "{id}");
            }
            TaskStatus::Completed => {
                outcomes.1 += 1;
                assert_eq!((charges, charged, refunded), (1, 900, 0), "{id}: charged once, kept");
                taken += 3;
            }
            other => panic!("{id}: ended {other}: {:?}", statuses(events)),
        }
    }
    assert_eq!(run.available(&sku).await, 100 - taken, "stock: only completed orders hold any");
    eprintln!("race: {} cancelled, {} completed", outcomes.0, outcomes.1);
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_finishes_a_compensation_the_providers_outage_left_owed() {
    start();
    let run = Run::new().await;
    // No stock: the purchase charges, cannot reserve, and is compensated; refunds are down.
    let sku = run.new_sku("OWED", 0, 1250).await;
    let owner = format!("erin-{}", &order_id("x")[4..]);
    let id = order_id("owed");
    std::fs::write(outage_file(), "refund").unwrap();
    run.submit(purchase(&id, &owner, &[(&sku, 1, 1250)], "tok_approve")).await;
    let task = task_until(&run, &owner, &id, "REFUNDING", |t| t.status == TaskStatus::Refunding).await;
    let arn = run.execution_of(&task).expect("a workflow ran for the task");
    // The compensation gives up after its deliveries; the failure path leaves it REFUNDING.
    let deadline = Instant::now() + Duration::from_secs(90);
    while execution_status(&run, &arn).await == "RUNNING" {
        assert!(Instant::now() < deadline, "execution still running");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let task = run.task_of(&owner, &id).await.unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Refunding, Some(Reason::OutOfStock)), "money owed stays visible");
    assert_eq!(run.provider(&id).await, (1, 1250, 0, 0), "charged, not refunded");

    // A sweep while the provider is still down: handed to operators, noted on the task.
    let report = sweep_now().await;
    let line = line_of(&report, &id).unwrap_or_else(|| panic!("{id} not swept: {report}"));
    assert_eq!((&line["outcome"], &line["status"], &line["statusAfter"]), (&json!("handedToOperators"), &json!("REFUNDING"), &json!("REFUNDING")), "{line}");
    let task = run.task_of(&owner, &id).await.unwrap();
    assert!(task.attention.as_deref().is_some_and(|a| a.contains("PaymentUnavailable")), "{:?}", task.attention);

    // The provider is back: the next sweep finishes it through the refund service's path.
    std::fs::remove_file(outage_file()).unwrap();
    let report = sweep_now().await;
    let line = line_of(&report, &id).unwrap_or_else(|| panic!("{id} not swept: {report}"));
    assert_eq!((&line["outcome"], &line["statusAfter"]), (&json!("finished"), &json!("FAILED")), "{line}");
    let task = run.task_of(&owner, &id).await.unwrap();
    assert_eq!((task.status, task.reason, task.refunded), (TaskStatus::Failed, Some(Reason::OutOfStock), 1250));
    assert!(task.refund_id.is_some() && task.inflight_since.is_none());
    assert_eq!(run.provider(&id).await, (1, 1250, 1, 1250), "refunded once, all of it");
    run.assert_balanced(&id).await;
    assert_eq!(run.available(&sku).await, 0, "no stock was held");
    // Its FAILED status event was published (the table is the outbox).
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events).last(), Some(&TaskStatus::Failed));
    // A further sweep finds nothing of it: it left the in-flight index.
    let report = sweep_now().await;
    assert!(line_of(&report, &id).is_none(), "{report}");
    // Everything above ran within the roles the template grants (the emulator enforces them).
    let denials: Vec<_> = taskflow_e2e::iam_denials().await.into_iter().filter(|d| d["function"].as_str().is_some_and(|f| f.contains("sweeper") || f.contains("api") || f.contains("intake"))).collect();
    assert!(denials.is_empty(), "{denials:#?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_leaves_healthy_work_in_flight_alone() {
    start();
    let run = Run::new().await;
    let sku = run.new_sku("HEALTHY", 5, 200).await;
    let owner = format!("frank-{}", &order_id("x")[4..]);
    let id = order_id("healthy");
    // The provider is unavailable for this token: the purchase stays CHARGING while its worker
    // retries (a running execution well within its time).
    run.submit(purchase(&id, &owner, &[(&sku, 1, 200)], "tok_unavailable")).await;
    task_until(&run, &owner, &id, "CHARGING", |t| t.status == TaskStatus::Charging).await;
    let report = sweep_now().await;
    let line = line_of(&report, &id).unwrap_or_else(|| panic!("{id} not looked at: {report}"));
    assert_eq!(line["outcome"], "leftAlone", "{line}");
    assert!(line["reason"].as_str().unwrap().contains("running"), "{line}");
    assert!(run.task_of(&owner, &id).await.unwrap().attention.is_none());
    // Its own workflow ends it, as without a sweeper.
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events).last(), Some(&TaskStatus::Failed));
    assert_eq!(events.last().unwrap().reason.as_deref(), Some(Reason::PaymentUnavailable.as_str()));
    assert_eq!(run.provider(&id).await.0, 0);
    run.close().await;
}
