//! Prices come from the catalogue, whoever submits the order: a producer on the bus or an owner
//! over the HTTP API. A client's price below the catalogue's is refused (REJECTED
//! `PRICE_MISMATCH`, announced, nothing charged, no stock taken); an omitted price is charged at
//! the catalogue's; a catalogue change applies to orders accepted after it.

use serde_json::json;
use std::time::{Duration, Instant};
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{http, order_id, purchase, stack, statuses, token, Run};
use taskflow_shared::catalogue::CatalogueEntry;

/// A purchase detail of `(sku, quantity)` lines with no `unitPrice` at all.
fn unpriced(id: &str, owner: &str, items: &[(&str, u32)]) -> serde_json::Value {
    let mut detail = purchase(id, owner, &[], "tok_approve");
    detail["items"] = json!(items.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>());
    detail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_bus_a_price_below_the_catalogues_is_refused_and_an_omitted_one_is_charged_from_it() {
    let run = Run::new().await;
    let lamp = run.new_sku("LAMP", 10, 4599).await;
    // The case: three lamps (45.99 each) at 0.01.
    let (cheap, omitted) = (order_id("cheap"), order_id("omitted"));
    run.submit(purchase(&cheap, "mallory", &[(&lamp, 3, 1)], "tok_approve")).await;
    run.submit(unpriced(&omitted, "paula", &[(&lamp, 3)])).await;
    let all = run.all_until_terminal(&[cheap.clone(), omitted.clone()]).await;

    // Refused before anything happened, and announced with its reason.
    let refused = &all[&cheap];
    assert_eq!(statuses(refused), [TaskStatus::Rejected]);
    assert_eq!(refused[0].reason.as_deref(), Some("PRICE_MISMATCH"));
    let task = run.task(&cheap).await;
    assert_eq!((task.status, task.amount, task.charge_id.as_deref()), (TaskStatus::Rejected, 0, None));
    assert!(task.reason_detail.as_deref().is_some_and(|d| d.contains("4599")), "{:?}", task.reason_detail);
    assert_eq!(run.provider(&cheap).await, (0, 0, 0, 0), "nothing charged");
    assert!(run.ledger(&cheap).await.is_none());

    // Charged the catalogue's price, and the whole path agrees: task, provider, ledger, stock.
    assert_eq!(statuses(&all[&omitted]).last(), Some(&TaskStatus::Completed));
    let task = run.task(&omitted).await;
    assert_eq!(task.amount, 3 * 4599);
    assert_eq!(task.items[0].unit_price, Some(4599));
    assert_eq!(run.provider(&omitted).await, (1, 3 * 4599, 0, 0));
    let entry = run.ledger(&omitted).await.unwrap();
    assert_eq!((entry.charged, entry.items[0].unit_price), (3 * 4599, Some(4599)));
    assert_eq!(run.available(&lamp).await, 10 - 3, "only the accepted order took stock");

    // The operator changes the price: orders accepted after it pay the new one, and the old price
    // is now a mismatch; the completed order keeps what it was charged.
    run.put_catalogue(CatalogueEntry { sku: lamp.clone(), name: "LAMP (test)".into(), unit_price: 4999, currency: "EUR".into(), active: true, stock_shards: 1 }).await;
    let (repriced, stale) = (order_id("repriced"), order_id("stale"));
    run.submit(unpriced(&repriced, "paula", &[(&lamp, 1)])).await;
    run.submit(purchase(&stale, "paula", &[(&lamp, 1, 4599)], "tok_approve")).await;
    let all = run.all_until_terminal(&[repriced.clone(), stale.clone()]).await;
    assert_eq!(statuses(&all[&repriced]).last(), Some(&TaskStatus::Completed));
    assert_eq!(run.provider(&repriced).await, (1, 4999, 0, 0));
    assert_eq!(all[&stale].last().unwrap().reason.as_deref(), Some("PRICE_MISMATCH"));
    assert_eq!(run.task(&omitted).await.amount, 3 * 4599);

    // Retired: no longer sold, at any price.
    run.put_catalogue(CatalogueEntry { sku: lamp.clone(), name: "LAMP (test)".into(), unit_price: 4999, currency: "EUR".into(), active: false, stock_shards: 1 }).await;
    let retired = order_id("retired");
    run.submit(unpriced(&retired, "paula", &[(&lamp, 1)])).await;
    let events = run.events_until_terminal(&retired).await;
    assert_eq!((events.last().unwrap().status, events.last().unwrap().reason.as_deref()), (TaskStatus::Rejected, Some("SKU_INACTIVE")));
    assert_eq!(run.provider(&retired).await, (0, 0, 0, 0));
    run.close().await;
}

/// Polls `GET /tasks/{id}` as `bearer` until the task is terminal.
async fn task_until_terminal(bearer: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, task) = http("GET", &format!("/tasks/{id}"), Some(bearer), None).await;
        if status == 200 && ["COMPLETED", "FAILED", "REJECTED"].contains(&task["status"].as_str().unwrap_or_default()) {
            return task;
        }
        assert!(Instant::now() < deadline, "{id} not terminal: {status} {task}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_http_api_a_price_below_the_catalogues_is_refused_and_an_omitted_one_is_charged_from_it() {
    let run = Run::new().await;
    let sku = run.new_sku("HTTPPRICE", 10, 4599).await;
    let owner = format!("olive-{}", &order_id("x")[4..]);
    let bearer = token(&owner, 600);

    let (cheap, omitted) = (order_id("http-cheap"), order_id("http-omitted"));
    let cheap_order = json!({"orderId": cheap, "kind": "purchase", "currency": "EUR", "paymentToken": "tok_approve",
                             "items": [{"sku": sku, "quantity": 3, "unitPrice": 1}]});
    let omitted_order = json!({"orderId": omitted, "kind": "purchase", "currency": "EUR", "paymentToken": "tok_approve",
                               "items": [{"sku": sku, "quantity": 3}]});
    for order in [&cheap_order, &omitted_order] {
        let (status, answer) = http("POST", "/orders", Some(&bearer), Some(&order.to_string())).await;
        assert_eq!(status, 202, "{answer}");
    }

    let refused = task_until_terminal(&bearer, &cheap).await;
    assert_eq!((refused["status"].as_str(), refused["reason"].as_str(), refused["amount"].as_u64()), (Some("REJECTED"), Some("PRICE_MISMATCH"), Some(0)), "{refused}");
    assert_eq!(run.provider(&cheap).await, (0, 0, 0, 0), "nothing charged");

    let charged = task_until_terminal(&bearer, &omitted).await;
    assert_eq!((charged["status"].as_str(), charged["amount"].as_u64()), (Some("COMPLETED"), Some(3 * 4599)), "{charged}");
    assert_eq!(charged["items"][0]["unitPrice"].as_u64(), Some(4599), "the owner sees the catalogue's price: {charged}");
    assert_eq!(run.provider(&omitted).await, (1, 3 * 4599, 0, 0));
    assert_eq!(run.available(&sku).await, 10 - 3);
    run.close().await;
}

/// The documented step that loads a catalogue on AWS, `taskflow --stack NAME catalogue load FILE
/// --stock`, run against the local stack as a CloudFormation stack (as `deployed_stack.rs` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_load_step_of_a_deployed_stack_sets_what_orders_are_charged() {
    let run = Run::new().await;
    let sku = format!("LOADED-{}", &order_id("x")[4..]).to_uppercase();
    let file = std::env::temp_dir().join(format!("{sku}.json"));
    let taskflow = |args: &[&str]| {
        let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
            .args(["--stack", &stack().stack_name])
            .args(args)
            .envs(taskflow_e2e::aws_env())
            .env("TASKFLOW_STATE_DIR", std::env::temp_dir().join("taskflow-no-local-stack"))
            .output()
            .expect("the taskflow binary runs (cargo build --workspace)");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let write = |price: u64| {
        let line = json!([{"sku": sku, "name": "loaded by the CLI", "unitPrice": price, "currency": "EUR", "active": true, "available": 5}]);
        std::fs::write(&file, line.to_string()).unwrap();
    };

    write(0);
    let (ok, text) = taskflow(&["catalogue", "load", file.to_str().unwrap(), "--stock"]);
    assert!(!ok && text.contains("unitPrice must be at least 1"), "a broken file is refused whole: {text}");
    write(777);
    let (ok, text) = taskflow(&["catalogue", "load", file.to_str().unwrap(), "--stock"]);
    assert!(ok && text.contains("1 catalogue entries") && text.contains("1 stock counts"), "{text}");
    let (ok, text) = taskflow(&["catalogue", "list", "--json"]);
    assert!(ok, "{text}");
    // The sku's own entry carries the loaded price (not just any "777" in the text).
    let listed: Vec<serde_json::Value> = serde_json::from_str(&text[text.find('[').unwrap()..=text.rfind(']').unwrap()]).expect("catalogue list --json prints a JSON list");
    let entry = listed.iter().find(|e| e["sku"] == sku.as_str()).unwrap_or_else(|| panic!("{sku} not listed: {text}"));
    assert_eq!(entry["unitPrice"], 777, "{entry}");

    let id = order_id("loaded");
    run.submit(unpriced(&id, "lena", &[(&sku, 2)])).await;
    assert_eq!(statuses(&run.events_until_terminal(&id).await).last(), Some(&TaskStatus::Completed));
    assert_eq!(run.provider(&id).await, (1, 2 * 777, 0, 0));
    assert_eq!(run.available(&sku).await, 5 - 2);
    let _ = std::fs::remove_file(&file);
    run.close().await;
}
