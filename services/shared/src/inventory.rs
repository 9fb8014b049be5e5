//! Stock: the inventory port and its DynamoDB adapter. Reserving decrements every line's `available`
//! only if there is enough, all lines or none (one transaction); the order's ledger entry records
//! that its stock is reserved, in the same transaction, so a repeated reservation or release is a
//! no-op rather than a second decrement or increment.

use crate::ledger::StockState;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::Serialize;
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
    /// Takes `items` out of stock for the order whose ledger entry is keyed `order_id` (its task
    /// id), all or nothing, once.
    async fn reserve(&self, order_id: &str, items: &[OrderItem]) -> Result<Reserved, InventoryError>;
    /// Puts back what `order_id` reserved, once, and closes its stock: after this, `reserve`
    /// answers `Fenced` (a late purchase delivery takes nothing a compensation gave back).
    async fn release(&self, order_id: &str, items: &[OrderItem]) -> Result<(), InventoryError>;
}

pub struct DynamoInventory {
    client: aws_sdk_dynamodb::Client,
    inventory_table: String,
    ledger_table: String,
}

impl DynamoInventory {
    pub fn new(config: &aws_config::SdkConfig, inventory_table: impl Into<String>, ledger_table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            inventory_table: inventory_table.into(),
            ledger_table: ledger_table.into(),
        }
    }

    fn line(&self, item: &OrderItem, delta: &str, condition: Option<&str>) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(&self.inventory_table)
            .key("sku", AttributeValue::S(item.sku.clone()))
            .update_expression(format!("SET available = available {delta} :q"))
            .expression_attribute_values(":q", AttributeValue::N(item.quantity.to_string()));
        if let Some(condition) = condition {
            update = update.condition_expression(condition);
        }
        TransactWriteItem::builder().update(update.build().expect("update has its parts")).build()
    }

    fn mark(&self, order_id: &str, to: StockState, condition: &str, from: Option<StockState>) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(&self.ledger_table)
            .key("taskId", AttributeValue::S(order_id.into()))
            .update_expression("SET stock = :to")
            .condition_expression(condition)
            // On a failed condition, the entry as it is: a repeat (RESERVED) or closed (RELEASED)?
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_values(":to", attr(&to));
        if let Some(from) = from {
            update = update.expression_attribute_values(":from", attr(&from));
        }
        TransactWriteItem::builder().update(update.build().expect("update has its parts")).build()
    }
}

fn attr<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("stock states serialise")
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

/// Which operations of a cancelled transaction failed their condition.
fn failed_conditions<E>(e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, E>) -> Option<Vec<bool>> {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

#[async_trait]
impl Inventory for DynamoInventory {
    async fn reserve(&self, order_id: &str, items: &[OrderItem]) -> Result<Reserved, InventoryError> {
        let mut ops: Vec<_> = items.iter().map(|i| self.line(i, "-", Some("available >= :q"))).collect();
        ops.push(self.mark(order_id, StockState::Reserved, "attribute_exists(taskId) AND attribute_not_exists(stock)", None));
        let result = self.client.transact_write_items().set_transact_items(Some(ops)).send().await;
        let Err(e) = result else { return Ok(Reserved::Reserved) };
        let Some(failed) = failed_conditions(&e) else {
            return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()));
        };
        if failed.get(items.len()).copied().unwrap_or(false) {
            return match stock_of(&e, items.len()) {
                // Closed by a compensation: nothing may be taken now.
                Some(StockState::Released) => Ok(Reserved::Fenced),
                // Reserved before: this is a repeat.
                Some(StockState::Reserved) => Ok(Reserved::Reserved),
                None => Err(InventoryError(format!("no ledger entry for {order_id} to mark its stock on"))),
            };
        }
        match failed.iter().position(|f| *f) {
            Some(i) if i < items.len() => Ok(Reserved::OutOfStock { sku: items[i].sku.clone() }),
            _ => Err(InventoryError(format!("reservation cancelled: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))),
        }
    }

    async fn release(&self, order_id: &str, items: &[OrderItem]) -> Result<(), InventoryError> {
        // A reservation can slip in between "not reserved" and "closed": then release it instead.
        for _ in 0..3 {
            let mut ops: Vec<_> = items.iter().map(|i| self.line(i, "+", None)).collect();
            ops.push(self.mark(order_id, StockState::Released, "stock = :from", Some(StockState::Reserved)));
            let result = self.client.transact_write_items().set_transact_items(Some(ops)).send().await;
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) if failed_conditions(&e).is_some_and(|f| f.last() == Some(&true)) => e,
                Err(e) => return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())),
            };
            match stock_of(&e, items.len()) {
                // Released before: nothing to put back.
                Some(StockState::Released) => return Ok(()),
                Some(StockState::Reserved) => continue,
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
                        // Reserved meanwhile (or no entry at all: nothing was charged, nothing to close).
                        Err(e) if crate::dynamo::conditional_failed(&e) => continue,
                        Err(e) => return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())),
                    }
                }
            }
        }
        Err(InventoryError(format!("stock of {order_id} kept changing while it was being released")))
    }
}
