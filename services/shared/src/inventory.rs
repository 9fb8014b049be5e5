//! Stock: the inventory port and its DynamoDB adapter. Reserving decrements every line's stock
//! only if there is enough, all lines or none (one transaction); the order's ledger entry is
//! written in the same transaction (the whole entry of the charge, completed, with its stock
//! reserved and from which shards: a reservation is the purchase's last effect, and the entry is
//! written once per purchase), so a repeated reservation or release is a no-op rather than a
//! second decrement or increment.
//!
//! # Shards
//!
//! The stock of a sku is split over `stockShards` items (catalogue, 1 by default; at most
//! `limits::MAX_STOCK_SHARDS`), keyed `keys::stock_key(sku, shard)`: shard 0 is the sku's own item
//! and also records the layout (`shards`, N; absent = 1). Item shape: `sku` (S, the stock key),
//! `available` (N, units), and on shard 0 `shards` (N). One item takes at most 1000 write units a
//! second and a transactional write costs 2 per item, so one shard sustains ~500 reservations/s
//! (DynamoDB: "Throughput capacity": <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>;
//! transactions: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling>);
//! N shards, N times that.
//!
//! A line is taken from one shard when one has enough, starting at a shard picked by a hash of the
//! order's task id and the sku ([`start_shard`]) so that concurrent orders spread over the shards;
//! when none has enough alone, from the fullest shards together ([`plan`]).

use crate::ledger::{EntryStatus, LedgerEntry, StockState, StockTake};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use taskflow_contracts::keys::stock_key;
use taskflow_contracts::limits::{DYNAMODB_TRANSACT_MAX_ITEMS, MAX_STOCK_SHARDS};
use taskflow_contracts::OrderItem;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reserved {
    Reserved,
    /// Not enough of `sku` (or no such sku): nothing was reserved.
    OutOfStock { sku: String },
    /// The order's stock was released or closed by a compensation: nothing may be reserved.
    Fenced,
}

#[derive(Debug, Error)]
#[error("inventory unavailable: {0}")]
pub struct InventoryError(pub String);

#[async_trait]
pub trait Inventory: Send + Sync {
    /// Takes `items` out of stock for the order of `charged` (the entry of its charge,
    /// `LedgerEntry::charged`; keyed by its `task_id`), all or nothing, once, and in the same
    /// transaction writes the order's ledger entry completed (`status: COMPLETED`, `completedAt`:
    /// what a refund's window counts from) with which shards each line came from: `charged`
    /// itself when the order has no entry yet (the purchase's only write of its entry), else the
    /// entry there (written by a compensation, or by a purchase before this one wrote its entry
    /// here) is marked and completed. So a purchase makes no `Ledger::record_charge` or
    /// `Ledger::complete` call on its way to completion. A repeat answers `Reserved` and changes
    /// nothing; `OutOfStock` and `Fenced` write no entry and leave one there as it was.
    async fn reserve(&self, charged: &LedgerEntry, items: &[OrderItem]) -> Result<Reserved, InventoryError>;
    /// Puts back what `order_id` reserved, each quantity to the shard it came from (as its ledger
    /// entry records; `items` serve only an entry reserved before shards, all on shard 0), once,
    /// and closes its stock: after this, `reserve` answers `Fenced` (a late purchase delivery
    /// takes nothing a compensation gave back).
    async fn release(&self, order_id: &str, items: &[OrderItem]) -> Result<(), InventoryError>;
}

// --- the arithmetic (plain Rust, unit-tested) ---------------------------------------------------

/// `available` units split over `shards` items (at least 1): each gets `available / shards`, and
/// the first `available % shards` one unit more. Sums to `available`.
pub fn split_stock(available: u64, shards: u32) -> Vec<u64> {
    let n = u64::from(shards.max(1));
    (0..n).map(|i| available / n + u64::from(i < available % n)).collect()
}

/// The shard a line of `sku` in order `order_id` tries first, of `shards`: the first 64 bits of
/// SHA-256 over both (`keys::derive`), modulo `shards`. Task ids are uniform, so concurrent
/// orders start on different shards; a redelivery of one order starts where it did before.
pub fn start_shard(order_id: &str, sku: &str, shards: u32) -> u32 {
    let digest = taskflow_contracts::keys::derive("", "stock-start", &[order_id, sku]);
    let bits = u64::from_str_radix(&digest[..16], 16).expect("derive gives hex");
    (bits % u64::from(shards.max(1))) as u32
}

/// Why no plan was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplanned {
    /// The shards of `sku` together have fewer units than the order's line asks for (or the sku
    /// has no stock item).
    Short { sku: String },
    /// There is enough, but so split over shards that the order's updates and its ledger mark
    /// exceed one transaction's [`DYNAMODB_TRANSACT_MAX_ITEMS`] (only when many lines each find no
    /// single shard with enough); `sku` is the line that did not fit.
    TooManyShards { sku: String },
}

/// Which shards `items` are taken from, given each sku's shard `levels` (index = shard; a sku
/// absent from `levels` has no stock). Per line, in order: the first shard with enough, walking
/// from [`start_shard`]; if none has enough alone, the fullest shards first (ties in walking
/// order) until the line is covered. Takes of one (sku, shard) are merged (a transaction may
/// touch an item once). The result holds at most [`DYNAMODB_TRANSACT_MAX_ITEMS`] − 1 takes (the
/// last operation is the ledger mark).
pub fn plan(order_id: &str, items: &[OrderItem], levels: &HashMap<String, Vec<u64>>) -> Result<Vec<StockTake>, Unplanned> {
    let mut left = levels.clone();
    let mut takes: Vec<StockTake> = Vec::new();
    for item in items {
        let short = || Unplanned::Short { sku: item.sku.clone() };
        let shards = left.get_mut(&item.sku).filter(|l| !l.is_empty()).ok_or_else(short)?;
        let n = shards.len() as u32;
        let start = start_shard(order_id, &item.sku, n);
        let walk: Vec<usize> = (0..n).map(|i| ((start + i) % n) as usize).collect();
        let mut need = u64::from(item.quantity);
        let mut line = Vec::new();
        if let Some(&s) = walk.iter().find(|&&s| shards[s] >= need) {
            line.push((s, need));
        } else {
            if shards.iter().fold(0u64, |sum, l| sum.saturating_add(*l)) < need {
                return Err(short());
            }
            let mut fullest = walk.clone();
            fullest.sort_by_key(|&s| std::cmp::Reverse(shards[s]));
            for s in fullest {
                if need == 0 {
                    break;
                }
                let take = shards[s].min(need);
                if take > 0 {
                    line.push((s, take));
                    need -= take;
                }
            }
        }
        for (s, quantity) in line {
            shards[s] -= quantity;
            match takes.iter_mut().find(|t| t.sku == item.sku && t.shard == s as u32) {
                Some(t) => t.quantity += quantity,
                None => takes.push(StockTake { sku: item.sku.clone(), shard: s as u32, quantity }),
            }
        }
        if takes.len() + 1 > DYNAMODB_TRANSACT_MAX_ITEMS {
            return Err(Unplanned::TooManyShards { sku: item.sku.clone() });
        }
    }
    Ok(takes)
}

// --- the DynamoDB adapter -----------------------------------------------------------------------

/// Transactions one reservation tries (each after a strongly consistent read of the levels but
/// the first, which may go without a read: see [`DynamoInventory`]) before it answers
/// `InventoryError` (transient: the purchase step is retried later, never judged out of stock).
pub const RESERVE_ATTEMPTS: u32 = 4;

/// How long an adapter trusts a sku's shard count it read (the layout changes only with a stock
/// load; a stale count costs a retry, never an oversell: every take is conditional).
const LAYOUT_TTL: Duration = Duration::from_secs(60);

/// The inventory table and the ledger's stock marks.
///
/// `reserve`: with every sku's shard count known from a read of the last [`LAYOUT_TTL`], the first
/// transaction goes without a read, each line on its [`start_shard`] (the common case: one call,
/// as before shards). Otherwise, and after a transaction cancelled for stock (or by a conflicting
/// transaction), it reads the order's stock mark and every shard of its skus strongly consistently
/// (BatchGetItem), [`plan`]s on those levels and tries again, up to [`RESERVE_ATTEMPTS`]
/// transactions. `OutOfStock` is answered only on such a read: the shards together lack the units
/// (or the order needs more than one transaction of shards: [`Unplanned::TooManyShards`]). Under
/// contention that outlasts the attempts, it answers `InventoryError` (the step is retried).
///
/// Reads: `dynamodb:BatchGetItem` on the inventory and ledger tables (reserve), a consistent
/// `dynamodb:GetItem` of the ledger entry (release). Writes: TransactWriteItems (UpdateItem; and
/// PutItem on the ledger table: a reservation writes the order's entry).
pub struct DynamoInventory {
    client: aws_sdk_dynamodb::Client,
    inventory_table: String,
    ledger_table: String,
    /// Shard counts read, by sku, with when they were read.
    layouts: Mutex<HashMap<String, (u32, Instant)>>,
}

/// What a consistent read found for a reservation.
struct Levels {
    /// The ledger entry exists.
    entry: bool,
    /// Its stock mark.
    stock: Option<StockState>,
    /// Per sku, the level of each shard.
    levels: HashMap<String, Vec<u64>>,
}

/// How a reservation's transaction ended.
enum Outcome {
    Done(Reserved),
    /// Cancelled for stock (a level changed) or by a conflicting transaction: read and try again.
    Again,
    /// Cancelled because the order has an entry already, with no stock mark: try again, marking it.
    Marking,
}

impl DynamoInventory {
    pub fn new(aws: &impl crate::clients::ClientSource, inventory_table: impl Into<String>, ledger_table: impl Into<String>) -> Self {
        Self {
            client: aws.dynamodb(),
            inventory_table: inventory_table.into(),
            ledger_table: ledger_table.into(),
            layouts: Mutex::new(HashMap::new()),
        }
    }

    fn shard_update(&self, take: &StockTake, delta: &str, condition: Option<&str>) -> TransactWriteItem {
        let expression = match delta {
            // An item deleted by a stock load with fewer shards comes back with what is returned.
            "+" => "SET available = if_not_exists(available, :zero) + :q",
            _ => "SET available = available - :q",
        };
        let mut update = Update::builder()
            .table_name(&self.inventory_table)
            .key("sku", AttributeValue::S(stock_key(&take.sku, take.shard)))
            .update_expression(expression)
            .expression_attribute_values(":q", AttributeValue::N(take.quantity.to_string()));
        if delta == "+" {
            update = update.expression_attribute_values(":zero", AttributeValue::N("0".into()));
        }
        if let Some(condition) = condition {
            update = update.condition_expression(condition);
        }
        TransactWriteItem::builder().update(update.build().expect("update has its parts")).build()
    }

    fn mark(&self, order_id: &str, to: StockState, takes: Option<&[StockTake]>, condition: &str, from: Option<StockState>) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(&self.ledger_table)
            .key("taskId", AttributeValue::S(order_id.into()))
            // A reservation also completes the purchase's entry (`Inventory::reserve`): one write
            // in the transaction it is in anyway, where a separate `Ledger::complete` was one more.
            .update_expression(if takes.is_some() { "SET stock = :to, shards = :shards, #status = :completed, completedAt = :at" } else { "SET stock = :to" })
            .condition_expression(condition)
            // On a failed condition, the entry as it is: a repeat (RESERVED) or closed (RELEASED)?
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_values(":to", attr(&to));
        if let Some(takes) = takes {
            update = update
                .expression_attribute_values(":shards", attr(&takes))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":completed", attr(&crate::ledger::EntryStatus::Completed))
                .expression_attribute_values(":at", attr(&chrono::Utc::now()));
        }
        if let Some(from) = from {
            update = update.expression_attribute_values(":from", attr(&from));
        }
        TransactWriteItem::builder().update(update.build().expect("update has its parts")).build()
    }

    /// The whole entry of `charged`, reserved from `takes` and completed, if the order has no
    /// entry yet (`attribute_not_exists`; on a failed condition, the entry there is returned).
    fn entry_put(&self, charged: &LedgerEntry, takes: &[StockTake]) -> TransactWriteItem {
        let entry = LedgerEntry {
            status: EntryStatus::Completed,
            stock: Some(StockState::Reserved),
            shards: takes.to_vec(),
            completed_at: Some(chrono::Utc::now()),
            ..charged.clone()
        };
        let put = Put::builder()
            .table_name(&self.ledger_table)
            .set_item(Some(serde_dynamo::to_item(&entry).expect("entries serialise")))
            .condition_expression("attribute_not_exists(taskId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("put has its parts");
        TransactWriteItem::builder().put(put).build()
    }

    /// The shard counts of `items`' skus, if every one was read within [`LAYOUT_TTL`].
    fn known_layout(&self, items: &[OrderItem]) -> Option<HashMap<String, Vec<u64>>> {
        let layouts = self.layouts.lock().expect("layout cache");
        items
            .iter()
            .map(|i| {
                let (n, at) = layouts.get(&i.sku)?;
                // Unknown levels: every shard "has enough", so each line goes to its start shard
                // (its condition decides).
                (at.elapsed() < LAYOUT_TTL).then(|| (i.sku.clone(), vec![u64::MAX; *n as usize]))
            })
            .collect()
    }

    /// Strongly consistent BatchGetItem of `keys` (table, key), by [`crate::dynamo::batch_get_keys`].
    async fn read(&self, keys: Vec<(String, crate::dynamo::Item)>) -> Result<Vec<(String, crate::dynamo::Item)>, InventoryError> {
        crate::dynamo::batch_get_keys(&self.client, keys, true).await.map_err(|e| InventoryError(format!("reading stock levels: {e}")))
    }

    /// The order's stock mark and every shard level of `items`' skus, strongly consistent: shard 0
    /// of each sku with the mark, then the other shards of the sharded ones.
    async fn levels(&self, order_id: &str, items: &[OrderItem]) -> Result<Levels, InventoryError> {
        let mut skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        skus.sort_unstable();
        skus.dedup();
        let inventory_key = |sku: &str, shard: u32| (self.inventory_table.clone(), HashMap::from([("sku".to_string(), AttributeValue::S(stock_key(sku, shard)))]));
        let mut keys = vec![(self.ledger_table.clone(), HashMap::from([("taskId".to_string(), AttributeValue::S(order_id.into()))]))];
        keys.extend(skus.iter().map(|sku| inventory_key(sku, 0)));
        let first = self.read(keys).await?;
        let mut read = Levels { entry: false, stock: None, levels: HashMap::new() };
        let mut counts = HashMap::new();
        for (table, item) in &first {
            if *table == self.ledger_table {
                read.entry = true;
                read.stock = item.get("stock").and_then(|s| serde_dynamo::from_attribute_value(s.clone()).ok());
                continue;
            }
            let Some(sku) = item.get("sku").and_then(|s| s.as_s().ok()) else { continue };
            let n = match item.get("shards").and_then(|n| n.as_n().ok()).map(|n| n.parse::<u32>()) {
                None => 1,
                Some(Ok(n)) if (1..=MAX_STOCK_SHARDS).contains(&n) => n,
                Some(other) => {
                    tracing::error!(sku, shards = ?other, "stock item with a shard count out of range: only shard 0 is used");
                    1
                }
            };
            counts.insert(sku.to_string(), n);
            let mut levels = vec![0; n as usize];
            levels[0] = level(item);
            read.levels.insert(sku.to_string(), levels);
        }
        let rest: Vec<_> = counts.iter().flat_map(|(sku, n)| (1..*n).map(|shard| inventory_key(sku, shard))).collect();
        if !rest.is_empty() {
            for (_, item) in self.read(rest).await? {
                let Some((sku, shard)) = item.get("sku").and_then(|s| s.as_s().ok()).and_then(|k| taskflow_contracts::keys::parse_stock_key(k)) else { continue };
                if let Some(slot) = read.levels.get_mut(&sku).and_then(|l| l.get_mut(shard as usize)) {
                    *slot = level(&item);
                }
            }
        }
        let now = Instant::now();
        self.layouts.lock().expect("layout cache").extend(counts.into_iter().map(|(sku, n)| (sku, (n, now))));
        Ok(read)
    }

    /// One reservation transaction: every take conditional on its level, then the ledger entry:
    /// written whole when `entry` is false (the order has none, as far as known), else the entry
    /// there marked (it must have no stock mark yet).
    async fn transact(&self, charged: &LedgerEntry, takes: &[StockTake], entry: bool) -> Result<Outcome, InventoryError> {
        let order_id = charged.task_id.as_str();
        let mut ops: Vec<_> = takes.iter().map(|t| self.shard_update(t, "-", Some("available >= :q"))).collect();
        ops.push(if entry {
            self.mark(order_id, StockState::Reserved, Some(takes), "attribute_exists(taskId) AND attribute_not_exists(stock)", None)
        } else {
            self.entry_put(charged, takes)
        });
        let result = self.client.transact_write_items().set_transact_items(Some(ops)).send().await;
        let Err(e) = result else { return Ok(Outcome::Done(Reserved::Reserved)) };
        let Some(reasons) = cancellation_codes(&e) else {
            return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()));
        };
        if reasons.get(takes.len()).is_some_and(|c| c == "ConditionalCheckFailed") {
            return match stock_of(&e, takes.len()) {
                // Closed by a compensation: nothing may be taken now.
                Some(StockState::Released) => Ok(Outcome::Done(Reserved::Fenced)),
                // Reserved before: this is a repeat.
                Some(StockState::Reserved) => Ok(Outcome::Done(Reserved::Reserved)),
                // An entry without a stock mark is there (a compensation's, or one a purchase
                // recorded before reserving, before purchases wrote it here): mark that one.
                None if !entry => Ok(Outcome::Marking),
                None => Err(InventoryError(format!("no ledger entry for {order_id} to mark its stock on"))),
            };
        }
        // A level fell below a take ("ConditionalCheckFailed") or another transaction held an
        // item ("TransactionConflict"): fresh levels may serve the order.
        if reasons.iter().any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict") {
            return Ok(Outcome::Again);
        }
        Err(InventoryError(format!("reservation cancelled: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))))
    }

    /// The ledger entry's stock mark and takes, strongly consistent (`None`: no entry).
    async fn entry_stock(&self, order_id: &str) -> Result<Option<(Option<StockState>, Vec<StockTake>)>, InventoryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.ledger_table)
            .key("taskId", AttributeValue::S(order_id.into()))
            .projection_expression("stock, shards")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| InventoryError(crate::dynamo::describe(&e)))?;
        let Some(item) = out.item else { return Ok(None) };
        let stock = item.get("stock").and_then(|s| serde_dynamo::from_attribute_value(s.clone()).ok());
        let takes = match item.get("shards") {
            None => Vec::new(),
            Some(v) => serde_dynamo::from_attribute_value(v.clone()).map_err(|e| InventoryError(format!("shards of {order_id} unreadable: {e}")))?,
        };
        Ok(Some((stock, takes)))
    }
}

fn level(item: &crate::dynamo::Item) -> u64 {
    item.get("available").and_then(|a| a.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn attr<T: Serialize + ?Sized>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("stock states and takes serialise")
}

/// The stock mark of the ledger entry returned with a cancelled transaction's operation `index`
/// (`None`: no entry, or no mark on it).
fn stock_of<E>(e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, E>, index: usize) -> Option<StockState> {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
            let item = c.cancellation_reasons().get(index)?.item()?;
            serde_dynamo::from_attribute_value(item.get("stock")?.clone()).ok()
        }
        _ => None,
    }
}

/// Each operation's cancellation code of a cancelled transaction ("None" for those that passed;
/// `None` for any other error).
fn cancellation_codes<E>(e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, E>) -> Option<Vec<String>> {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
            Some(c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect())
        }
        _ => None,
    }
}

#[async_trait]
impl Inventory for DynamoInventory {
    async fn reserve(&self, charged: &LedgerEntry, items: &[OrderItem]) -> Result<Reserved, InventoryError> {
        let order_id = charged.task_id.as_str();
        let mut known = self.known_layout(items);
        // Whether the order has a ledger entry already (then it is marked, not written): a
        // purchase reserves before it writes one, so at first it is taken to have none.
        let mut entry = false;
        for attempt in 0..RESERVE_ATTEMPTS {
            let takes = match known.take() {
                Some(optimistic) => plan(order_id, items, &optimistic).map_err(|e| InventoryError(format!("{e:?} with unknown levels")))?,
                None => {
                    if attempt > 0 {
                        // Others took the levels this order read: let them finish.
                        tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    }
                    let read = self.levels(order_id, items).await?;
                    match read.stock {
                        Some(StockState::Reserved) => return Ok(Reserved::Reserved),
                        Some(StockState::Released) => return Ok(Reserved::Fenced),
                        None => entry = read.entry,
                    }
                    match plan(order_id, items, &read.levels) {
                        Ok(takes) => takes,
                        Err(Unplanned::Short { sku }) => return Ok(Reserved::OutOfStock { sku }),
                        Err(Unplanned::TooManyShards { sku }) => {
                            tracing::warn!(order_id, sku = sku.as_str(), "stock there, but over more shards than one transaction holds");
                            return Ok(Reserved::OutOfStock { sku });
                        }
                    }
                }
            };
            match self.transact(charged, &takes, entry).await? {
                Outcome::Done(reserved) => return Ok(reserved),
                Outcome::Again => continue,
                // Nothing was taken: read again and mark the entry there (rare: only an order
                // whose entry a compensation or an earlier purchase wrote first).
                Outcome::Marking => entry = true,
            }
        }
        Err(InventoryError(format!("stock of {order_id}'s skus kept changing over {RESERVE_ATTEMPTS} attempts")))
    }

    async fn release(&self, order_id: &str, items: &[OrderItem]) -> Result<(), InventoryError> {
        // A reservation can slip in between "not reserved" and "closed": then release it instead.
        for _ in 0..3 {
            let Some((stock, takes)) = self.entry_stock(order_id).await? else {
                // No entry at all: nothing was charged, nothing to close.
                continue;
            };
            match stock {
                // Released before: nothing to put back.
                Some(StockState::Released) => return Ok(()),
                Some(StockState::Reserved) => {
                    // Reserved before shards were recorded: every line came from shard 0.
                    let takes = if takes.is_empty() {
                        items.iter().map(|i| StockTake { sku: i.sku.clone(), shard: 0, quantity: u64::from(i.quantity) }).collect()
                    } else {
                        takes
                    };
                    let mut ops: Vec<_> = takes.iter().map(|t| self.shard_update(t, "+", None)).collect();
                    ops.push(self.mark(order_id, StockState::Released, None, "stock = :from", Some(StockState::Reserved)));
                    match self.client.transact_write_items().set_transact_items(Some(ops)).send().await {
                        Ok(_) => return Ok(()),
                        // Released meanwhile by another delivery: read again.
                        Err(e) if cancellation_codes(&e).is_some_and(|c| c.last().is_some_and(|c| c == "ConditionalCheckFailed")) => continue,
                        Err(e) => return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())),
                    }
                }
                // Never reserved: close it, so that no reservation follows.
                None => {
                    let closed = self
                        .client
                        .update_item()
                        .table_name(&self.ledger_table)
                        .key("taskId", AttributeValue::S(order_id.into()))
                        .update_expression("SET stock = :released")
                        .condition_expression("attribute_exists(taskId) AND attribute_not_exists(stock)")
                        .expression_attribute_values(":released", attr(&StockState::Released))
                        .send()
                        .await;
                    match closed {
                        Ok(_) => return Ok(()),
                        // Reserved meanwhile.
                        Err(e) if crate::dynamo::conditional_failed(&e) => continue,
                        Err(e) => return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())),
                    }
                }
            }
        }
        Err(InventoryError(format!("stock of {order_id} kept changing while it was being released")))
    }
}

/// The inventory items that hold `available` units of `sku` split over `shards` (clamped to
/// 1..=[`MAX_STOCK_SHARDS`]; [`split_stock`]), shard 0 first: `sku` (its stock key) and
/// `available`; shard 0's item also carries `shards`.
pub fn stock_items(sku: &str, available: u64, shards: u32) -> Vec<crate::dynamo::Item> {
    let shards = shards.clamp(1, MAX_STOCK_SHARDS);
    split_stock(available, shards)
        .into_iter()
        .enumerate()
        .map(|(shard, units)| {
            let mut item = HashMap::from([
                ("sku".to_string(), AttributeValue::S(stock_key(sku, shard as u32))),
                ("available".to_string(), AttributeValue::N(units.to_string())),
            ]);
            if shard == 0 {
                item.insert("shards".into(), AttributeValue::N(shards.to_string()));
            }
            item
        })
        .collect()
}

/// Sets `sku`'s stock to `available` split over `shards` items ([`stock_items`]): overwrites each
/// shard's count (for a new stack, or to reset stock; what a reservation or release in flight
/// does meanwhile is not counted), writing shard 0 (and its count of shards) first, then deletes
/// the shards an earlier load had beyond `shards`, so no stale shard holds stock that a later,
/// wider layout would sell again. AWS calls: `dynamodb:GetItem`, `PutItem`, `DeleteItem` on the
/// inventory table.
pub async fn load_stock(client: &aws_sdk_dynamodb::Client, table: &str, sku: &str, available: u64, shards: u32) -> Result<(), String> {
    let before = client
        .get_item()
        .table_name(table)
        .key("sku", AttributeValue::S(stock_key(sku, 0)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| crate::dynamo::describe(&e))?
        .item
        .and_then(|item| item.get("shards").and_then(|n| n.as_n().ok()).and_then(|n| n.parse::<u32>().ok()))
        .unwrap_or(1)
        .clamp(1, MAX_STOCK_SHARDS);
    let items = stock_items(sku, available, shards);
    let now = items.len() as u32;
    for item in items {
        client.put_item().table_name(table).set_item(Some(item)).send().await.map_err(|e| crate::dynamo::describe(&e))?;
    }
    for stale in now..before {
        client
            .delete_item()
            .table_name(table)
            .key("sku", AttributeValue::S(stock_key(sku, stale)))
            .send()
            .await
            .map_err(|e| crate::dynamo::describe(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> OrderItem {
        OrderItem { sku: sku.into(), quantity, unit_price: Some(100) }
    }

    /// The entry of a charge for order `order_id` (a task id), as a purchase builds it.
    fn entry(order_id: &str) -> LedgerEntry {
        LedgerEntry {
            task_id: order_id.into(),
            order_id: order_id.into(),
            owner: "o".into(),
            currency: "EUR".into(),
            charge_id: format!("ch_{order_id}"),
            charged: 100,
            refunded: 0,
            refunds: Default::default(),
            items: vec![],
            status: EntryStatus::Charged,
            stock: None,
            shards: vec![],
            charged_at: chrono::Utc::now(),
            completed_at: None,
        }
    }

    fn levels(of: &[(&str, &[u64])]) -> HashMap<String, Vec<u64>> {
        of.iter().map(|(sku, l)| (sku.to_string(), l.to_vec())).collect()
    }

    #[test]
    fn stock_splits_evenly_with_the_remainder_on_the_first_shards() {
        assert_eq!(split_stock(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split_stock(8, 4), vec![2, 2, 2, 2]);
        assert_eq!(split_stock(3, 4), vec![1, 1, 1, 0]);
        assert_eq!(split_stock(7, 1), vec![7]);
        assert_eq!(split_stock(0, 2), vec![0, 0]);
        assert_eq!(split_stock(5, 0), vec![5], "no shards means one");
        for (available, shards) in [(1000, 3), (999_999, 16), (17, 16)] {
            assert_eq!(split_stock(available, shards).iter().sum::<u64>(), available);
        }
        let items = stock_items("HOT-1", 10, 4);
        assert_eq!(items.len(), 4);
        assert_eq!(items[0]["sku"], AttributeValue::S("HOT-1".into()));
        assert_eq!(items[0]["shards"], AttributeValue::N("4".into()));
        assert_eq!(items[3]["sku"], AttributeValue::S(stock_key("HOT-1", 3)));
        assert_eq!(items[3]["available"], AttributeValue::N("2".into()));
        assert!(!items[1].contains_key("shards"));
    }

    #[test]
    fn start_shards_spread_orders_and_stay_put_for_one_order() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[start_shard(&taskflow_contracts::keys::task_id("o", &format!("order-{i}")), "HOT-1", 4) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(start_shard("t-1", "HOT-1", 4), start_shard("t-1", "HOT-1", 4));
        assert_eq!(start_shard("t-1", "HOT-1", 1), 0);
    }

    #[test]
    fn a_line_goes_whole_to_the_first_shard_with_enough_from_its_start() {
        let order = "t-abc";
        let start = start_shard(order, "HOT-1", 4) as usize;
        let mut l = vec![5; 4];
        l[start] = 1;
        let takes = plan(order, &[line("HOT-1", 3)], &levels(&[("HOT-1", &l)])).unwrap();
        assert_eq!(takes, vec![StockTake { sku: "HOT-1".into(), shard: ((start + 1) % 4) as u32, quantity: 3 }]);
        let takes = plan(order, &[line("HOT-1", 1)], &levels(&[("HOT-1", &l)])).unwrap();
        assert_eq!(takes[0].shard as usize, start, "the start shard when it has enough");
        // Unknown levels (u64::MAX): the start shard.
        let takes = plan(order, &[line("HOT-1", 7), line("BOOK-1", 2)], &levels(&[("HOT-1", &[u64::MAX; 4]), ("BOOK-1", &[u64::MAX])])).unwrap();
        assert_eq!(takes.iter().map(|t| (t.shard, t.quantity)).collect::<Vec<_>>(), vec![(start as u32, 7), (0, 2)]);
    }

    #[test]
    fn a_line_no_shard_covers_alone_is_split_fullest_first_and_never_oversold() {
        let takes = plan("t-x", &[line("HOT-1", 9)], &levels(&[("HOT-1", &[2, 5, 0, 3])])).unwrap();
        assert_eq!(
            takes.iter().map(|t| (t.shard, t.quantity)).collect::<Vec<_>>(),
            vec![(1, 5), (3, 3), (0, 1)],
            "fullest first, the last one partly"
        );
        assert_eq!(plan("t-x", &[line("HOT-1", 11)], &levels(&[("HOT-1", &[2, 5, 0, 3])])), Err(Unplanned::Short { sku: "HOT-1".into() }));
        assert_eq!(plan("t-x", &[line("NONE", 1)], &levels(&[])), Err(Unplanned::Short { sku: "NONE".into() }));
        // All lines or none: the second line is short, so nothing is planned.
        assert_eq!(
            plan("t-x", &[line("HOT-1", 10), line("BOOK-1", 2)], &levels(&[("HOT-1", &[2, 5, 0, 3]), ("BOOK-1", &[1])])),
            Err(Unplanned::Short { sku: "BOOK-1".into() })
        );
        // Two lines of one sku see what the first took, and share one update per shard.
        let takes = plan("t-x", &[line("HOT-1", 6), line("HOT-1", 4)], &levels(&[("HOT-1", &[2, 5, 0, 3])])).unwrap();
        assert_eq!(takes.iter().map(|t| t.quantity).sum::<u64>(), 10);
        let mut shards: Vec<u32> = takes.iter().map(|t| t.shard).collect();
        shards.dedup();
        assert_eq!(shards.len(), takes.len(), "one take per (sku, shard)");
        assert_eq!(plan("t-x", &[line("HOT-1", 6), line("HOT-1", 5)], &levels(&[("HOT-1", &[2, 5, 0, 3])])), Err(Unplanned::Short { sku: "HOT-1".into() }));
    }

    #[tokio::test]
    async fn the_fake_returns_each_take_to_its_shard_once() {
        let inventory = crate::fakes::InMemoryInventory::with_shards(&[("HOT-1", 10, 4), ("BOOK-1", 5, 1)]);
        assert_eq!(inventory.levels("HOT-1"), vec![3, 3, 2, 2]);
        // 7 units: no shard has them alone, so the order spans shards.
        let order = [line("HOT-1", 7), line("BOOK-1", 2)];
        assert_eq!(inventory.reserve(&entry("t-1"), &order).await.unwrap(), Reserved::Reserved);
        assert_eq!(inventory.reserve(&entry("t-1"), &order).await.unwrap(), Reserved::Reserved, "a repeat takes nothing");
        assert_eq!((inventory.available("HOT-1"), inventory.available("BOOK-1")), (3, 3));
        let takes = inventory.takes("t-1").unwrap();
        assert!(takes.iter().filter(|t| t.sku == "HOT-1").count() >= 3, "{takes:?}");
        // Another order takes from the shards left; then t-1's release goes back where it came from.
        assert_eq!(inventory.reserve(&entry("t-2"), &[line("HOT-1", 1)]).await.unwrap(), Reserved::Reserved);
        let before = inventory.levels("HOT-1");
        inventory.release("t-1", &order).await.unwrap();
        inventory.release("t-1", &order).await.unwrap();
        let after = inventory.levels("HOT-1");
        for t in takes.iter().filter(|t| t.sku == "HOT-1") {
            assert_eq!(after[t.shard as usize], before[t.shard as usize] + t.quantity, "shard {}", t.shard);
        }
        assert_eq!((inventory.available("HOT-1"), inventory.available("BOOK-1")), (9, 5));
        assert_eq!(inventory.reserve(&entry("t-1"), &order).await.unwrap(), Reserved::Fenced);
        assert_eq!(inventory.reserve(&entry("t-3"), &[line("HOT-1", 10)]).await.unwrap(), Reserved::OutOfStock { sku: "HOT-1".into() });
        assert_eq!(inventory.reserve(&entry("t-3"), &[line("HOT-1", 9)]).await.unwrap(), Reserved::Reserved, "all 9 left, over all shards");
        assert_eq!(inventory.levels("HOT-1"), vec![0, 0, 0, 0]);
    }

    #[test]
    fn an_order_whose_takes_exceed_one_transaction_is_not_planned() {
        // 50 skus of 16 shards with 1 unit each, 3 units a line: 150 takes > 99.
        let skus: Vec<String> = (0..50).map(|i| format!("S-{i}")).collect();
        let l: HashMap<String, Vec<u64>> = skus.iter().map(|s| (s.clone(), vec![1; 16])).collect();
        let items: Vec<OrderItem> = skus.iter().map(|s| line(s, 3)).collect();
        match plan("t-x", &items, &l) {
            Err(Unplanned::TooManyShards { sku }) => assert_eq!(sku, "S-33", "33 lines × 3 = 99 takes fit with the mark, the 34th does not"),
            other => panic!("{other:?}"),
        }
        // One unit a line: 50 takes and the mark fit.
        let items: Vec<OrderItem> = skus.iter().map(|s| line(s, 1)).collect();
        assert_eq!(plan("t-x", &items, &l).unwrap().len(), 50);
    }
}
