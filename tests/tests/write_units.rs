//! DynamoDB write units of one completed purchase, by table, as the emulator counts them by
//! AWS's rules (`infra/local/emulator.py`): what `make bench` reports as "write units per
//! completed purchase" (issue 17: ≤ 12 on taskflow's own tables). Its own test binary, with one
//! test, so that no other test's writes are counted with it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{order_id, purchase, stack, Run};

/// The emulator's write units per table since the last reset (`reset`: and reset them).
async fn write_units(reset: bool) -> BTreeMap<String, f64> {
    let usage = taskflow::local::usage(stack(), reset).await.unwrap();
    usage
        .into_iter()
        .filter_map(|(k, v)| {
            let table = k.strip_prefix("dynamodb.WriteRequestUnits.")?;
            // `taskflow-<stage>-tasks` → `tasks`.
            let short = table.strip_prefix("taskflow-").and_then(|rest| rest.split_once('-')).map_or(table, |(_, name)| name);
            Some((short.to_string(), v))
        })
        .collect()
}

/// Waits until the write counts stay the same for `quiet` (the status events, receipt and notice
/// of an order are still written after its terminal status).
async fn settled(quiet: Duration) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = write_units(false).await;
    let mut still_since = Instant::now();
    while still_since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "writes did not settle: {last:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = write_units(false).await;
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_purchase_costs_at_most_twelve_write_units_on_taskflows_tables() {
    let run = Run::new().await;
    let sku = run.new_sku("UNITS", 10, 1250).await;
    // A first purchase warms the functions' caches (the stock layout a reservation reads once a
    // minute), as the bench's many orders do; the second one is counted.
    let warm = order_id("units-warm");
    run.submit(purchase(&warm, "units-owner", &[(&sku, 1, 1250)], "tok_approve")).await;
    assert_eq!(run.events_until_terminal(&warm).await.last().unwrap().status, TaskStatus::Completed);
    settled(Duration::from_secs(3)).await;
    write_units(true).await;

    let id = order_id("units");
    run.submit(purchase(&id, "units-owner", &[(&sku, 1, 1250)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(events.last().unwrap().status, TaskStatus::Completed, "{events:?}");
    // The notification step notes the receipt on the task last (its write is counted).
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.task(&id).await.receipts.is_empty() {
        assert!(Instant::now() < deadline, "no receipt noted on {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let units = settled(Duration::from_secs(3)).await;

    let own: f64 = units.iter().filter(|(t, _)| !t.contains("sandbox")).map(|(_, u)| u).sum();
    eprintln!("write units of one completed purchase: {units:?}; taskflow's own tables {own}");
    // The ledger entry is written once, in the reservation's transaction (2 units: a
    // transactional write costs double), where a separate Put and a transactional update cost 3.
    assert_eq!(units.get("ledger").copied(), Some(2.0), "{units:?}");
    assert_eq!(units.get("inventory").copied(), Some(2.0), "one stock item, in the same transaction: {units:?}");
    assert!(own <= 12.0, "issue 17's target: ≤ 12 write units per completed purchase on taskflow's tables, got {own}: {units:?}");
    assert_eq!(run.available(&sku).await, 8);
    run.assert_balanced(&id).await;
    run.close().await;
}
