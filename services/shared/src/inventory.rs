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
}

#[derive(Debug, Error)]
#[error("inventory unavailable: {0}")]
pub struct InventoryError(pub String);

#[async_trait]
pub trait Inventory: Send + Sync {
    /// Takes `items` out of stock for `order_id`, all or nothing, once.
    async fn reserve(&self, order_id: &str, items: &[OrderItem]) -> Result<Reserved, InventoryError>;
    /// Puts back what `order_id` reserved, once; nothing if it reserved nothing.
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
            .key("orderId", AttributeValue::S(order_id.into()))
            .update_expression("SET stock = :to")
            .condition_expression(condition)
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
        ops.push(self.mark(order_id, StockState::Reserved, "attribute_exists(orderId) AND attribute_not_exists(stock)", None));
        let result = self.client.transact_write_items().set_transact_items(Some(ops)).send().await;
        let Err(e) = result else { return Ok(Reserved::Reserved) };
        let Some(failed) = failed_conditions(&e) else {
            return Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()));
        };
        if failed.get(items.len()).copied().unwrap_or(false) {
            // Its stock was reserved (or released) before: this is a repeat.
            return Ok(Reserved::Reserved);
        }
        match failed.iter().position(|f| *f) {
            Some(i) if i < items.len() => Ok(Reserved::OutOfStock { sku: items[i].sku.clone() }),
            _ => Err(InventoryError(format!("reservation cancelled: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))),
        }
    }

    async fn release(&self, order_id: &str, items: &[OrderItem]) -> Result<(), InventoryError> {
        let mut ops: Vec<_> = items.iter().map(|i| self.line(i, "+", None)).collect();
        ops.push(self.mark(order_id, StockState::Released, "stock = :from", Some(StockState::Reserved)));
        let result = self.client.transact_write_items().set_transact_items(Some(ops)).send().await;
        match result {
            Ok(_) => Ok(()),
            // Not reserved (never, or released already): nothing to put back.
            Err(e) if failed_conditions(&e).is_some_and(|f| f.last() == Some(&true)) => Ok(()),
            Err(e) => Err(InventoryError(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())),
        }
    }
}
