//! Chaos: orders under every fault at once — every SQS batch delivered twice, function processes
//! killed mid-batch, 30 % transient payment failures, malformed messages in every queue — and
//! still no order lost, nothing charged, refunded or notified twice, stock and ledger balanced.
//! Prints one line of figures. `CHAOS_ORDERS` sets the count (300 by default, in `make test`;
//! `make chaos` runs 1000); `CHAOS_PAYMENT_FAULT_RATE` (0.3) and `CHAOS_KILL_RATE` (0.05) the
//! faults, `CHAOS_MAX_RECEIVE_COUNT` the deliveries per step (template default 5) — raise the
//! rates or lower the count to send many orders down the failure path. `CHAOS_CANCEL_RATE` (0.1)
//! of the orders also get an `OrderCancelled` at a random moment (half as soon as the order is
//! recorded, the others 0–3 s after it was sent): each
//! ends CANCELLED with nothing charged, or the charge wins and it completes as any other.
//! Half the orders buy a hot sku whose stock is split over 4 shards (`stockShards`), every fifth
//! buys both skus: stock balances per sku over its shards, and per shard against what the
//! completed orders' ledger entries say they took from it (a release goes back to its shard).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use taskflow::local::Faults;
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{order_id, purchase, stack, stack_with, Run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_order_is_lost_and_nothing_happens_twice_under_faults() {
    let orders: usize = std::env::var("CHAOS_ORDERS").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    // Higher rates drive more orders down the failure path (compensation) on purpose.
    let payment_fault_rate: f64 = std::env::var("CHAOS_PAYMENT_FAULT_RATE").ok().and_then(|n| n.parse().ok()).unwrap_or(0.3);
    let kill_rate: f64 = std::env::var("CHAOS_KILL_RATE").ok().and_then(|n| n.parse().ok()).unwrap_or(0.05);
    let cancel_rate: f64 = std::env::var("CHAOS_CANCEL_RATE").ok().and_then(|n| n.parse().ok()).unwrap_or(0.1);
    stack_with(|options| {
        options.faults = Faults { duplicate_deliveries: true, kill_rate, payment_fault_rate, payment_latency_ms: 0 };
        // Crashed batches come back after this, not after a minute.
        options.parameters.insert("QueueVisibilityTimeout".into(), "10".into());
        if let Ok(count) = std::env::var("CHAOS_MAX_RECEIVE_COUNT") {
            options.parameters.insert("WorkerMaxReceiveCount".into(), count);
        }
    });
    let run = Run::new().await;
    let started = Instant::now();
    let sku = run.new_sku("CHAOS", 10 * orders as u64, 1000).await;
    let hot = run.new_sharded_sku("CHAOSHOT", 10 * orders as u64, 4, 1000).await;
    let initial = 10 * orders as u64;
    let hot_initial = run.levels(&hot).await;

    // The orders, in PutEvents calls of 10 as a busy producer would send them, with malformed
    // messages thrown into every queue along the way.
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let mut ids = Vec::new();
    // Per order: units of the plain sku, units of the hot sku.
    let mut quantities: HashMap<String, (u64, u64)> = HashMap::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut malformed = 0;
    let mut cancels = Vec::new();
    for chunk in 0..orders.div_ceil(10) {
        let mut entries = Vec::new();
        for i in chunk * 10..((chunk + 1) * 10).min(orders) {
            let id = order_id(&format!("chaos{i}"));
            let quantity = (i % 3 + 1) as u32;
            let lines: Vec<(&str, u32, u64)> = match (i % 2, i % 5) {
                (_, 0) => vec![(sku.as_str(), quantity, 1000), (hot.as_str(), 1, 1000)],
                (0, _) => vec![(sku.as_str(), quantity, 1000)],
                _ => vec![(hot.as_str(), quantity, 1000)],
            };
            let units = |of: &str| lines.iter().filter(|l| l.0 == of).map(|l| u64::from(l.1)).sum::<u64>();
            quantities.insert(id.clone(), (units(&sku), units(&hot)));
            owners.insert(id.clone(), format!("owner{}", i % 7));
            entries.push(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("taskflow.orders")
                    .detail_type("OrderSubmitted")
                    .event_bus_name(stack().output("EventBusName").unwrap())
                    .detail(purchase(&id, &owners[&id], &lines, "tok_approve").to_string())
                    .build(),
            );
            ids.push(id);
        }
        let out = events.put_events().set_entries(Some(entries)).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0);
        // Some owners change their minds, at random moments: racing intake, the charge, or late.
        for id in &ids[chunk * 10..] {
            if rand::random::<f64>() < cancel_rate {
                let (id, owner) = (id.clone(), owners[id].clone());
                let tasks = taskflow_shared::tasks::DynamoTaskStore::new(&run.aws, stack().output("TaskTableName").unwrap());
                // Half of them as soon as the order is recorded (the window before its charge),
                // the others at any moment in the next 3 s.
                let soon = rand::random::<bool>();
                let after = Duration::from_millis(if soon { rand::random_range(0..150) } else { rand::random_range(0..3000) });
                cancels.push(tokio::spawn(async move {
                    use taskflow_shared::tasks::TaskStore;
                    let key = taskflow_contracts::keys::task_id(&owner, &id);
                    let until = Instant::now() + Duration::from_secs(30);
                    while soon && tasks.get(&key).await.ok().flatten().is_none() && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tokio::time::sleep(after).await;
                    taskflow_e2e::cancel_event(&owner, &id).await;
                    id
                }));
            }
        }
        if chunk % 5 == 0 {
            for queue in ["IntakeQueueUrl", "PurchaseQueueUrl", "NotificationQueueUrl", "RefundQueueUrl"] {
                sqs.send_message().queue_url(stack().output(queue).unwrap()).message_body(format!("malformed {chunk}")).send().await.unwrap();
                malformed += 1;
            }
        }
    }

    let mut cancelled_ids = Vec::new();
    for cancel in cancels {
        cancelled_ids.push(cancel.await.unwrap());
    }

    // Wait for every task to reach a terminal status (from the table: the truth).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut tasks = HashMap::new();
    loop {
        for id in &ids {
            if !tasks.get(id).is_some_and(|t: &taskflow_shared::tasks::TaskRecord| t.status.is_terminal()) {
                // Read by task id (owner and order id), as the services do: no Scan per poll.
                if let Some(task) = run.task_of(&owners[id], id).await {
                    tasks.insert(id.clone(), task);
                }
            }
        }
        let open = ids.iter().filter(|id| !tasks.get(*id).is_some_and(|t| t.status.is_terminal())).count();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Let late duplicates and redeliveries run out before counting effects.
    tokio::time::sleep(Duration::from_secs(15)).await;

    let terminal = tasks.values().filter(|t| t.status.is_terminal()).count();
    let completed: Vec<&String> = ids.iter().filter(|id| tasks.get(*id).is_some_and(|t| t.status == TaskStatus::Completed)).collect();
    let mut by_status = BTreeMap::new();
    for t in tasks.values() {
        *by_status.entry(format!("{}{}", t.status, t.reason.map(|r| format!("/{r}")).unwrap_or_default())).or_insert(0) += 1;
    }

    // Money, from the provider's own records.
    let mut double_charges = 0;
    let mut double_refunds = 0;
    let mut unbalanced = 0;
    let mut cancelled_but_charged = 0;
    for id in &ids {
        let (charges, charged, refunds, refunded) = run.provider(id).await;
        if tasks.get(id).is_some_and(|t| t.status == TaskStatus::Cancelled) {
            // A cancelled order has no net charge: it was never charged at all.
            cancelled_but_charged += usize::from(charges > 0 || refunds > 0 || run.ledger_of(&owners[id], id).await.is_some());
        }
        double_charges += usize::from(charges > 1);
        double_refunds += usize::from(refunds > 1 || refunded > charged);
        let ledger = run.ledger_of(&owners[id], id).await;
        let ok = match (&ledger, tasks.get(id).map(|t| t.status)) {
            (Some(e), Some(TaskStatus::Completed)) => charges == 1 && e.charged == charged && e.refunded == refunded && refunded == 0,
            (Some(e), _) => e.charged == charged && e.refunded == refunded && charged == refunded,
            (None, _) => charges == 0 && refunds == 0,
        };
        unbalanced += usize::from(!ok);
    }
    // Notices, one object per send: more than one per order and status is a double.
    let notices = run.outbox_counts().await;
    let double_notifications = notices.values().filter(|n| **n > 1).count();
    let mut dlq = 0;
    for queue in taskflow::dlq::queues(stack()) {
        dlq += taskflow::dlq::depth(&sqs, &queue.url).await.unwrap();
    }
    let sold: u64 = completed.iter().map(|id| quantities[*id].0).sum();
    let hot_sold: u64 = completed.iter().map(|id| quantities[*id].1).sum();
    let available = run.available(&sku).await;
    let hot_levels = run.levels(&hot).await;
    let hot_available: u64 = hot_levels.iter().sum();
    // Per shard of the hot sku: its stock less what completed orders' ledger entries took from it
    // (a compensated order's release went back to the shards it took from).
    let mut hot_taken = vec![0u64; hot_levels.len()];
    for id in &completed {
        if let Some(entry) = run.ledger_of(&owners[*id], id).await {
            for take in entry.shards.iter().filter(|t| t.sku == hot) {
                hot_taken[take.shard as usize] += take.quantity;
            }
        }
    }
    let shards_balanced = (0..hot_levels.len()).all(|s| hot_levels[s] + hot_taken[s] == hot_initial[s]);
    let stock_balanced = available + sold == initial && hot_available + hot_sold == initial && shards_balanced;
    if !stock_balanced {
        // Which completed orders have no reservation mark on their ledger entry?
        let mut unmarked = Vec::new();
        for id in &completed {
            if run.ledger_of(&owners[*id], id).await.and_then(|e| e.stock) != Some(taskflow_shared::ledger::StockState::Reserved) {
                unmarked.push((*id).clone());
            }
        }
        println!("chaos: completed orders without a reservation mark: {unmarked:?}; hot shards {hot_initial:?} -> {hot_levels:?}, taken {hot_taken:?}");
    }
    let lost = orders - terminal;
    let cancelled = tasks.values().filter(|t| t.status == TaskStatus::Cancelled).count();
    assert!(tasks.iter().all(|(id, t)| t.status != TaskStatus::Cancelled || cancelled_ids.contains(id)), "only orders whose owner cancelled them are CANCELLED");
    println!(
        "chaos: orders={orders} terminal={terminal} lost={lost} completed={} double_charges={double_charges} double_refunds={double_refunds} double_notifications={double_notifications} dlq_entries={dlq} malformed_injected={malformed} stock_balanced={stock_balanced} (sold {sold}, {} taken; hot sold {hot_sold}, {} taken over shards {hot_levels:?}) ledger_unbalanced={unbalanced} cancels_sent={} cancelled={cancelled} cancelled_but_charged={cancelled_but_charged} seconds={:.0} outcomes={by_status:?}",
        completed.len(),
        initial - available,
        initial - hot_available,
        cancelled_ids.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "orders lost");
    assert_eq!((double_charges, double_refunds, double_notifications), (0, 0, 0), "something happened twice");
    assert!(stock_balanced, "stock does not add up");
    assert_eq!(unbalanced, 0, "ledger and provider disagree");
    assert_eq!(cancelled_but_charged, 0, "a cancelled order has a charge");
    assert!(dlq >= malformed as u64 / 2, "malformed messages went somewhere other than a DLQ");
    run.close().await;
}
