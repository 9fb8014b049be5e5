//! A hot sku, its stock split over shards (`stockShards`), on the real local stack: many
//! concurrent orders for less stock than they ask (some also buying an unsharded sku) never
//! oversell, sell every unit the shards hold only when they run out, keep each shard's count
//! equal to its stock less what completed orders took from it (as their ledger entries record),
//! and every order ends. Then the inventory adapter itself against the stack's tables: a line
//! split over shards, all lines or none, repeats, a release back to the shards the ledger names,
//! the fence, an entry reserved before shards, and a stock load that narrows the layout.

use std::collections::HashMap;
use taskflow_contracts::{OrderItem, Reason, TaskStatus};
use taskflow_e2e::{order_id, purchase, stack, Run};
use taskflow_shared::inventory::{DynamoInventory, Inventory, Reserved};
use taskflow_shared::ledger::{DynamoLedger, EntryStatus, Ledger, LedgerEntry, StockState, StockTake};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_a_sharded_sku_never_oversell_and_balance_per_shard() {
    let run = Run::new().await;
    let (stock, shards, orders) = (40u64, 4u32, 60usize);
    let hot = run.new_sharded_sku("HOT", stock, shards, 500).await;
    let plain = run.new_sku("PLAIN", 1000, 300).await;
    let initial = run.levels(&hot).await;
    assert_eq!(initial, vec![10, 10, 10, 10]);

    // 60 orders asking 1 or 2 units each (90 in all) for 40 in stock; every third one also buys
    // one unit of an unsharded sku. Sent in PutEvents batches of 10, as fast as they go.
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let mut ids = Vec::new();
    let mut asked: HashMap<String, (u64, u64)> = HashMap::new();
    for chunk in 0..orders.div_ceil(10) {
        let mut entries = Vec::new();
        for i in chunk * 10..(chunk + 1) * 10 {
            let id = order_id(&format!("hot{i}"));
            let quantity = (i % 2 + 1) as u32;
            let mut lines = vec![(hot.as_str(), quantity, 500)];
            if i % 3 == 0 {
                lines.push((plain.as_str(), 1, 300));
            }
            asked.insert(id.clone(), (u64::from(quantity), u64::from(i % 3 == 0)));
            entries.push(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("taskflow.orders")
                    .detail_type("OrderSubmitted")
                    .event_bus_name(stack().output("EventBusName").unwrap())
                    .detail(purchase(&id, "hotbuyer", &lines, "tok_approve").to_string())
                    .build(),
            );
            ids.push(id);
        }
        let out = events.put_events().set_entries(Some(entries)).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }

    // Nothing lost: every order ends (all_until_terminal asserts it).
    run.all_until_terminal(&ids).await;
    let after = run.levels(&hot).await;
    let left: u64 = after.iter().sum();

    let mut sold = (0u64, 0u64);
    let mut taken_per_shard = vec![0u64; shards as usize];
    let mut shards_used = std::collections::BTreeSet::new();
    let mut out_of_stock = Vec::new();
    for id in &ids {
        let task = run.task(id).await;
        let entry = run.ledger(id).await.expect("charged, so on the ledger");
        let (quantity, plain_quantity) = asked[id];
        match (task.status, task.reason) {
            (TaskStatus::Completed, _) => {
                sold.0 += quantity;
                sold.1 += plain_quantity;
                assert_eq!(entry.stock, Some(StockState::Reserved), "{id}");
                // The ledger says where every unit came from: the lines exactly, each shard in range.
                let from: u64 = entry.shards.iter().filter(|t| t.sku == hot).map(|t| t.quantity).sum();
                let plain_from: u64 = entry.shards.iter().filter(|t| t.sku == plain).map(|t| t.quantity).sum();
                assert_eq!((from, plain_from), (quantity, plain_quantity), "{id}: {:?}", entry.shards);
                for take in entry.shards.iter().filter(|t| t.sku == hot) {
                    taken_per_shard[take.shard as usize] += take.quantity;
                    shards_used.insert(take.shard);
                }
                assert!(entry.shards.iter().filter(|t| t.sku == plain).all(|t| t.shard == 0), "an unsharded sku has shard 0 only");
            }
            (TaskStatus::Failed, Some(Reason::OutOfStock)) => {
                // Refunded in full, nothing held: its stock mark is closed, no shard recorded.
                assert_eq!(entry.stock, Some(StockState::Released), "{id}");
                assert!(entry.shards.is_empty(), "{id}: {:?}", entry.shards);
                assert_eq!(entry.refunded, entry.charged, "{id}");
                assert!(task.reason_detail.as_deref().is_some_and(|d| d.contains(&hot)), "{id}: short of the hot sku, not the plain one: {:?}", task.reason_detail);
                out_of_stock.push(quantity);
            }
            other => panic!("{id}: ended {other:?}"),
        }
        run.assert_balanced(id).await;
    }
    eprintln!("hot sku: sold {} of {stock} over shards {shards_used:?}, {} orders out of stock, levels {initial:?} -> {after:?}", sold.0, out_of_stock.len());

    // No oversell, and the stock adds up: shard by shard, what completed orders took from it.
    assert!(sold.0 <= stock, "oversold: {} of {stock}", sold.0);
    assert_eq!(left, stock - sold.0, "shards hold the stock less what completed orders hold");
    for shard in 0..shards as usize {
        assert_eq!(after[shard], initial[shard] - taken_per_shard[shard], "shard {shard}: {initial:?} -> {after:?}, taken {taken_per_shard:?}");
    }
    assert_eq!(run.available(&plain).await, 1000 - sold.1, "the unsharded sku balances too");
    // Out of stock only when the shards together lacked it: stock never came back in this run,
    // so what is left is less than any refused order asked for (if a 1-unit order was refused,
    // every unit was sold); demand exceeded stock, so some were refused.
    assert!(!out_of_stock.is_empty(), "90 units asked of 40");
    for quantity in &out_of_stock {
        assert!(left < *quantity, "an order of {quantity} was refused with {left} left over the shards {after:?}");
    }
    assert!(shards_used.len() >= 2, "concurrent orders spread over the shards: {shards_used:?}");
    run.close().await;
}

fn line(sku: &str, quantity: u32) -> OrderItem {
    OrderItem { sku: sku.into(), quantity, unit_price: Some(100) }
}

/// The entry of a charge for a reservation to write (`record: false`, as a purchase does) or to
/// mark (`record: true`: written before, as a compensation or an earlier purchase does).
async fn charged_entry(ledger: &DynamoLedger, label: &str, items: &[OrderItem], record: bool) -> LedgerEntry {
    let task_id = taskflow_contracts::keys::task_id("shardtester", &order_id(label));
    let entry = LedgerEntry {
        task_id,
        order_id: label.into(),
        owner: "shardtester".into(),
        currency: "EUR".into(),
        charge_id: format!("ch_{label}"),
        charged: 100,
        refunded: 0,
        refunds: Default::default(),
        items: items.to_vec(),
        status: EntryStatus::Charged,
        stock: None,
        shards: Vec::new(),
        charged_at: chrono::Utc::now(),
        completed_at: None,
    };
    if record {
        ledger.record_charge(&entry).await.unwrap();
    }
    entry
}

/// A charged ledger entry, written, for a reservation to mark.
async fn charged(ledger: &DynamoLedger, label: &str, items: &[OrderItem]) -> LedgerEntry {
    charged_entry(ledger, label, items, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_splits_releases_to_its_shards_and_keeps_all_or_none() {
    let run = Run::new().await;
    let inventory_table = stack().output("InventoryTableName").unwrap();
    let ledger = DynamoLedger::new(&run.aws, stack().output("LedgerTableName").unwrap());
    let inventory = DynamoInventory::new(&run.aws, inventory_table, stack().output("LedgerTableName").unwrap());
    let hot = run.new_sharded_sku("HOTA", 10, 4, 100).await;
    let plain = run.new_sku("PLAINA", 5, 100).await;
    assert_eq!(run.levels(&hot).await, vec![3, 3, 2, 2]);

    // 7 units: no shard has them, so the line is split (fullest first); one transaction with the
    // unsharded line and the ledger mark.
    let order = [line(&hot, 7), line(&plain, 2)];
    let t1 = charged(&ledger, "split", &order).await;
    assert_eq!(inventory.reserve(&t1, &order).await.unwrap(), Reserved::Reserved);
    let levels = run.levels(&hot).await;
    assert_eq!((levels.iter().sum::<u64>(), run.available(&plain).await), (3, 3));
    let entry = ledger.get(&t1.task_id).await.unwrap().unwrap();
    assert_eq!(entry.stock, Some(StockState::Reserved));
    let hot_takes: Vec<&StockTake> = entry.shards.iter().filter(|t| t.sku == hot).collect();
    assert_eq!(hot_takes.iter().map(|t| t.quantity).sum::<u64>(), 7);
    assert!(hot_takes.len() >= 3, "split over shards: {hot_takes:?}");
    for t in &hot_takes {
        assert_eq!(levels[t.shard as usize], [3, 3, 2, 2][t.shard as usize] - t.quantity, "{t:?} {levels:?}");
    }
    // A repeat takes nothing.
    assert_eq!(inventory.reserve(&t1, &order).await.unwrap(), Reserved::Reserved);
    assert_eq!(run.levels(&hot).await, levels);

    // All or none: enough of the hot sku, not of the plain one: nothing moves.
    let both = [line(&hot, 1), line(&plain, 4)];
    let t2 = charged(&ledger, "short", &both).await;
    assert_eq!(inventory.reserve(&t2, &both).await.unwrap(), Reserved::OutOfStock { sku: plain.clone() });
    assert_eq!((run.levels(&hot).await, run.available(&plain).await), (levels.clone(), 3));
    // 4 of the hot sku with 3 left over all shards: out of stock, nothing moves.
    let four = [line(&hot, 4)];
    let t3 = charged(&ledger, "four", &four).await;
    assert_eq!(inventory.reserve(&t3, &four).await.unwrap(), Reserved::OutOfStock { sku: hot.clone() });
    assert_eq!(run.levels(&hot).await, levels);

    // Release: each take back to its shard, once; then the order is fenced.
    inventory.release(&t1.task_id, &order).await.unwrap();
    inventory.release(&t1.task_id, &order).await.unwrap();
    assert_eq!((run.levels(&hot).await, run.available(&plain).await), (vec![3, 3, 2, 2], 5));
    assert_eq!(inventory.reserve(&t1, &order).await.unwrap(), Reserved::Fenced);
    assert_eq!(ledger.get(&t1.task_id).await.unwrap().unwrap().stock, Some(StockState::Released));

    // An entry reserved before shards were recorded (stock RESERVED, no `shards`): its lines go
    // back to shard 0, the sku's own item.
    let old = [line(&plain, 1)];
    let t4 = charged(&ledger, "legacy", &old).await;
    aws_sdk_dynamodb::Client::new(&run.aws)
        .update_item()
        .table_name(stack().output("LedgerTableName").unwrap())
        .key("taskId", aws_sdk_dynamodb::types::AttributeValue::S(t4.task_id.clone()))
        .update_expression("SET stock = :r")
        .expression_attribute_values(":r", aws_sdk_dynamodb::types::AttributeValue::S("RESERVED".into()))
        .send()
        .await
        .unwrap();
    inventory.release(&t4.task_id, &old).await.unwrap();
    assert_eq!(run.available(&plain).await, 6);

    // A stock load with fewer shards leaves no stale shard behind: exactly what it loads.
    let dynamodb = aws_sdk_dynamodb::Client::new(&run.aws);
    taskflow_shared::inventory::load_stock(&dynamodb, stack().output("InventoryTableName").unwrap(), &hot, 9, 2).await.unwrap();
    assert_eq!(run.levels(&hot).await, vec![5, 4]);
    for stale in [2, 3] {
        let item = dynamodb
            .get_item()
            .table_name(stack().output("InventoryTableName").unwrap())
            .key("sku", aws_sdk_dynamodb::types::AttributeValue::S(taskflow_contracts::keys::stock_key(&hot, stale)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item;
        assert!(item.is_none(), "shard {stale} deleted");
    }
    // The adapter read 4 shards before: a stale layout costs a retry, never a wrong answer.
    let nine = [line(&hot, 9)];
    let t5 = charged(&ledger, "nine", &nine).await;
    assert_eq!(inventory.reserve(&t5, &nine).await.unwrap(), Reserved::Reserved);
    assert_eq!(run.levels(&hot).await, vec![0, 0]);
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_writes_a_purchases_ledger_entry_once_in_its_reservation() {
    let run = Run::new().await;
    let ledger = DynamoLedger::new(&run.aws, stack().output("LedgerTableName").unwrap());
    let inventory = DynamoInventory::new(&run.aws, stack().output("InventoryTableName").unwrap(), stack().output("LedgerTableName").unwrap());
    let hot = run.new_sharded_sku("HOTW", 10, 2, 100).await;

    // No entry before (a purchase writes none before it reserves): the reservation writes it,
    // completed, with its stock mark and shards.
    let order = [line(&hot, 3)];
    let first = charged_entry(&ledger, "written", &order, false).await;
    assert!(ledger.get(&first.task_id).await.unwrap().is_none());
    assert_eq!(inventory.reserve(&first, &order).await.unwrap(), Reserved::Reserved);
    let entry = ledger.get(&first.task_id).await.unwrap().expect("the reservation wrote the entry");
    assert_eq!((entry.status, entry.stock, entry.charge_id.as_str(), entry.charged), (EntryStatus::Completed, Some(StockState::Reserved), first.charge_id.as_str(), 100));
    assert!(entry.completed_at.is_some());
    assert_eq!(entry.shards.iter().map(|t| t.quantity).sum::<u64>(), 3);
    assert_eq!(run.available(&hot).await, 7);
    // A redelivery (an entry built again, later) takes nothing and keeps the first entry.
    let again = LedgerEntry { charged_at: chrono::Utc::now() + chrono::Duration::seconds(5), ..first.clone() };
    assert_eq!(inventory.reserve(&again, &order).await.unwrap(), Reserved::Reserved);
    assert_eq!(run.available(&hot).await, 7);
    assert_eq!(ledger.get(&first.task_id).await.unwrap().unwrap(), entry);

    // Out of stock: nothing taken, no entry written (the purchase writes the charge's alone).
    let many = [line(&hot, 8)];
    let short = charged_entry(&ledger, "unwritten", &many, false).await;
    assert_eq!(inventory.reserve(&short, &many).await.unwrap(), Reserved::OutOfStock { sku: hot.clone() });
    assert!(ledger.get(&short.task_id).await.unwrap().is_none());
    assert_eq!(run.available(&hot).await, 7);

    // A compensation wrote the entry (the purchase died after its charge) and closed its stock:
    // a late purchase delivery takes nothing and leaves the entry as it was.
    let late = charged_entry(&ledger, "compensated", &order, true).await;
    inventory.release(&late.task_id, &order).await.unwrap();
    assert_eq!(inventory.reserve(&late, &order).await.unwrap(), Reserved::Fenced);
    let closed = ledger.get(&late.task_id).await.unwrap().unwrap();
    assert_eq!((closed.status, closed.stock), (EntryStatus::Charged, Some(StockState::Released)));
    assert_eq!(run.available(&hot).await, 7);
    // An entry there with no stock mark (written before the reservation) is marked instead.
    let marked = charged_entry(&ledger, "marked", &order, true).await;
    assert_eq!(inventory.reserve(&marked, &order).await.unwrap(), Reserved::Reserved);
    let entry = ledger.get(&marked.task_id).await.unwrap().unwrap();
    assert_eq!((entry.status, entry.stock, entry.charged_at), (EntryStatus::Completed, Some(StockState::Reserved), marked.charged_at));
    assert_eq!(run.available(&hot).await, 4);
    // The entry the reservation wrote is what a release reads: its takes go back, once.
    inventory.release(&first.task_id, &order).await.unwrap();
    inventory.release(&first.task_id, &order).await.unwrap();
    assert_eq!(run.available(&hot).await, 7);
    assert_eq!(inventory.reserve(&first, &order).await.unwrap(), Reserved::Fenced);
    assert_eq!(run.available(&hot).await, 7);
    run.close().await;
}
