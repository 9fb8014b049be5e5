//! Timeouts that hold under a backlog: a burst of orders far above what the stack serves makes
//! work wait in its queues, and no callback step may time out for it — latency grows instead.
//!
//! A callback step's heartbeat clock starts when its work message is SENT, so queue wait counts
//! against `HeartbeatSeconds`. The stack here gets its seconds from the rule (README "Timeouts
//! under a backlog", `callback_budget` in infra/local/lint.py) for a queue-wait budget
//! (`BACKLOG_WAIT_BUDGET`, 60 s), and a slow payment provider (`BACKLOG_PAYMENT_LATENCY_MS`,
//! 2500) makes the purchase queue the bottleneck. The test fails unless every order completes,
//! none times out, and the purchase queue really made orders wait longer than a heartbeat that
//! ignores queue wait would allow (so a fixed heartbeat, as main had, would have failed here:
//! `BACKLOG_HEARTBEAT_SECONDS=26` runs this same burst with one and shows it).
//!
//! `make test` runs `BACKLOG_ORDERS` = 160; `make burst` runs 1500 published at once with no
//! provider latency and a budget for what the local stack serves (`BACKLOG_EXPECT_WAIT=false`:
//! it reports the purchase queue's wait instead of requiring one). Prints one line of figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use taskflow::local::Faults;
use taskflow_contracts::{Reason, TaskStatus};
use taskflow_e2e::{order_id, purchase, stack, stack_with, Run};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The rule (the same as `callback_budget` in infra/local/lint.py, which checks the template's
/// defaults): (least HeartbeatSeconds, least TimeoutSeconds) for a queue-wait budget `wait`.
fn callback_budget(wait: u64, visibility: u64, max_receive_count: u64, function_timeout: u64, retry_max_delay: u64, claim_hold: u64, heartbeat_interval: u64) -> (u64, u64) {
    let away = visibility.max(function_timeout + retry_max_delay.max(claim_hold));
    (wait + away + heartbeat_interval, max_receive_count * (wait + away))
}

/// A percentile of sorted values (nearest rank).
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_waits_in_the_queues_and_no_step_times_out_for_it() {
    let orders: usize = env_or("BACKLOG_ORDERS", 160);
    let wait_budget: u64 = env_or("BACKLOG_WAIT_BUDGET", 60);
    let payment_latency_ms: u64 = env_or("BACKLOG_PAYMENT_LATENCY_MS", 2500);
    // The rule's other inputs, small so that the queue wait is most of the heartbeat: visibility
    // 10 s (the template's minimum), function timeout 10 s (the template's), the longest backoff
    // 5 s, a claim held 11 s (a little over the function timeout), a beat every 5 s.
    let (visibility, receives, function_timeout, retry_max_delay, claim_hold, interval) = (10, 5, 10, 5, 11, 5);
    let (rule_heartbeat, rule_timeout) = callback_budget(wait_budget, visibility, receives, function_timeout, retry_max_delay, claim_hold, interval);
    // What a heartbeat that forgets queue wait would be: the same rule with no wait.
    let (fixed_heartbeat, _) = callback_budget(0, visibility, receives, function_timeout, retry_max_delay, claim_hold, interval);
    let heartbeat: u64 = env_or("BACKLOG_HEARTBEAT_SECONDS", rule_heartbeat);
    let expect_wait: bool = env_or("BACKLOG_EXPECT_WAIT", true);
    stack_with(|options| {
        options.faults = Faults { payment_latency_ms, ..Faults::default() };
        // The backlog is built in the purchase queue on purpose, with a payment latency sized for
        // one environment per function: with the local host's default three
        // (`ENVIRONMENTS_PER_FUNCTION`) the purchase stage keeps up (a run: purchase-queue wait
        // at most 6.2 s) and the backlog moves to the intake queue, where no step's clock runs.
        // `make burst` (no wait expected) keeps the default.
        if expect_wait {
            options.environments = 1;
        }
        for (key, value) in [
            ("QueueVisibilityTimeout", visibility),
            ("WorkerMaxReceiveCount", receives),
            ("QueueWaitBudgetSeconds", wait_budget),
            ("CallbackHeartbeatSeconds", heartbeat),
            ("CallbackTimeoutSeconds", rule_timeout),
        ] {
            options.parameters.insert(key.into(), value.to_string());
        }
        for (key, value) in [("RETRY_MAX_DELAY_SECONDS", retry_max_delay), ("IDEMPOTENCY_HOLD_SECONDS", claim_hold), ("HEARTBEAT_INTERVAL_SECONDS", interval)] {
            options.extra_env.insert(key.into(), value.to_string());
        }
    });
    let run = Run::new().await;
    let sku = run.new_sku("BURST", 10 * orders as u64, 1000).await;
    let started = Instant::now();

    // All of it at once, as an outside producer would: PutEvents of 10 entries, 8 in flight.
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let run_tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let ids: Vec<String> = (0..orders).map(|i| order_id(&format!("burst{run_tag}-{i}"))).collect();
    let bus = stack().output("EventBusName").unwrap().to_string();
    let chunks: Vec<Vec<String>> = ids.chunks(10).map(|c| c.to_vec()).collect();
    let published = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let mut puts = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    for chunk in chunks {
        let (events, bus, sku, published, gate) = (events.clone(), bus.clone(), sku.clone(), published.clone(), gate.clone());
        puts.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .source("taskflow.orders")
                        .detail_type("OrderSubmitted")
                        .event_bus_name(&bus)
                        .detail(purchase(id, &format!("owner{}", i % 7), &[(&sku, 1, 1000)], "tok_approve").to_string())
                        .build()
                })
                .collect();
            let at = chrono::Utc::now();
            let out = events.put_events().set_entries(Some(entries)).send().await.unwrap();
            assert_eq!(out.failed_entry_count, 0);
            published.lock().unwrap().extend(chunk.into_iter().map(|id| (id, at)));
        });
    }
    while let Some(done) = puts.join_next().await {
        done.unwrap();
    }
    let published_in = started.elapsed();

    // Until every order is terminal: one scan of the task table's statuses a round (cheaper for
    // the emulator than a read per order), then each task once.
    let dynamo = aws_sdk_dynamodb::Client::new(&run.aws);
    let table = stack().output("TaskTableName").unwrap().to_string();
    let prefix = format!("e2e-burst{run_tag}-");
    let deadline = Instant::now() + Duration::from_secs(rule_timeout.max(600) + 120);
    let mut statuses = BTreeMap::new();
    loop {
        statuses.clear();
        let mut start = None;
        loop {
            let out = dynamo
                .scan()
                .table_name(&table)
                .filter_expression("begins_with(orderId, :p)")
                .projection_expression("orderId, #s")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S(prefix.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in out.items.unwrap_or_default() {
                statuses.insert(item["orderId"].as_s().unwrap().clone(), item["status"].as_s().unwrap().clone());
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let terminal = statuses.values().filter(|s| ["COMPLETED", "FAILED", "REJECTED"].contains(&s.as_str())).count();
        if terminal == orders || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();

    let published = published.lock().unwrap().clone();
    let (mut latencies, mut waits, mut intake_waits) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes = BTreeMap::new();
    let (mut terminal, mut completed, mut timed_out) = (0, 0, 0);
    for id in &ids {
        let Some(task) = run.try_task(id).await else {
            *outcomes.entry("MISSING".to_string()).or_insert(0) += 1;
            continue;
        };
        *outcomes.entry(format!("{}{}", task.status, task.reason.map(|r| format!("/{r}")).unwrap_or_default())).or_insert(0) += 1;
        timed_out += usize::from(task.reason == Some(Reason::TimedOut) || task.history.iter().any(|h| h.reason == Some(Reason::TimedOut)));
        if task.status.is_terminal() {
            terminal += 1;
            latencies.push((task.history.last().unwrap().at - published[id]).num_milliseconds());
        }
        completed += usize::from(task.status == TaskStatus::Completed);
        // RECEIVED (intake, just before it starts the workflow) → CHARGING (the purchase worker
        // read the work message): at least the step's wait in the purchase queue.
        let at = |status| task.history.iter().find(|h| h.status == status).map(|h| h.at);
        if let (Some(received), Some(charging)) = (at(TaskStatus::Received), at(TaskStatus::Charging)) {
            waits.push((charging - received).num_milliseconds());
        }
        // Published → RECEIVED: the wait in the intake queue (no step's clock runs there yet).
        if let Some(received) = at(TaskStatus::Received) {
            intake_waits.push((received - published[id]).num_milliseconds());
        }
    }
    latencies.sort_unstable();
    waits.sort_unstable();
    intake_waits.sort_unstable();
    let max_wait = waits.last().copied().unwrap_or(0);
    let failed: BTreeMap<_, _> = outcomes.iter().filter(|(k, _)| k.starts_with("FAILED")).collect();
    println!(
        "burst: orders={orders} terminal={terminal} completed={completed} failed={failed:?} timed_out={timed_out} latency_ms p50={} p95={} max={} purchase_queue_wait_ms p50={} max={max_wait} intake_wait_ms max={} seconds={seconds:.0} published_in={:.1}s heartbeat_s={heartbeat} timeout_s={rule_timeout} wait_budget_s={wait_budget} outcomes={outcomes:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(0),
        percentile(&waits, 0.5),
        intake_waits.last().copied().unwrap_or(0),
        published_in.as_secs_f64(),
    );
    assert_eq!(terminal, orders, "orders not terminal: {outcomes:?}");
    assert_eq!(timed_out, 0, "steps timed out: {outcomes:?}");
    assert_eq!(completed, orders, "every order pays with tok_approve and completes: {outcomes:?}");
    // `make burst` publishes far more than the stack serves, but where the backlog builds is up
    // to the emulator (its slowest stage is often intake, where no step's clock runs yet), so it
    // only reports the purchase queue's wait; this run builds it there on purpose.
    assert!(
        !expect_wait || max_wait > 1000 * fixed_heartbeat as i64,
        "the burst must make work wait longer ({max_wait} ms) than a heartbeat that ignores queue wait ({fixed_heartbeat} s), or it proves nothing"
    );
    run.close().await;
}
