//! The ledger: one entry per charged order — what was charged, what has been refunded, and the
//! state of its stock. Refunds are checked against it, and it is what makes two concurrent
//! refunds unable to exceed an order's total: the refunded amount only grows through a
//! conditional write that compares it with the charge.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use taskflow_contracts::limits::MAX_REFUNDS_PER_ORDER;
use taskflow_contracts::{Money, OrderItem};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryStatus {
    /// Charged; the purchase has not completed (yet).
    Charged,
    /// The purchase completed: refundable within the window.
    Completed,
    /// Charged, then refunded in full because the purchase could not complete.
    Compensated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockState {
    Reserved,
    Released,
}

/// What a reservation took from one stock shard of one sku (`keys::stock_key(sku, shard)`):
/// recorded on the ledger entry (`shards`) in the reservation's own transaction, so that a
/// release gives each quantity back to the shard it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockTake {
    pub sku: String,
    /// 0 ..`stockShards` of the sku when it was reserved.
    pub shard: u32,
    /// Units taken (at least 1).
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The table's partition key (`taskId`): the charged order's task id (`keys::task_id`).
    pub task_id: String,
    /// The submitter's order id, as sent.
    pub order_id: String,
    pub owner: String,
    pub currency: String,
    pub charge_id: String,
    pub charged: Money,
    #[serde(default)]
    pub refunded: Money,
    /// Refunds applied, by the refund's id (a refund order id, or `compensation`).
    #[serde(default)]
    pub refunds: BTreeMap<String, Money>,
    pub items: Vec<OrderItem>,
    pub status: EntryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<StockState>,
    /// Which shards the reservation took each line from (written with `stock: RESERVED`, never
    /// changed after). Empty on an entry reserved before shards existed: its lines came from
    /// shard 0, the sku's own item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<StockTake>,
    pub charged_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl LedgerEntry {
    /// The entry of a charge just made for `task`'s order of `items`: nothing refunded, no stock.
    pub fn charged(task: &crate::tasks::TaskRecord, charge_id: &str, items: &[taskflow_contracts::OrderItem]) -> Self {
        LedgerEntry {
            task_id: task.task_id.clone(),
            order_id: task.order_id.clone(),
            owner: task.owner.clone(),
            currency: task.currency.clone(),
            charge_id: charge_id.to_string(),
            charged: task.amount,
            refunded: 0,
            refunds: Default::default(),
            items: items.to_vec(),
            status: EntryStatus::Charged,
            stock: None,
            shards: Vec::new(),
            charged_at: chrono::Utc::now(),
            completed_at: None,
        }
    }

    pub fn refundable(&self) -> Money {
        self.charged.saturating_sub(self.refunded)
    }
}

/// How much a refund takes from a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundAmount {
    /// This many minor units, or nothing (`Applied::Exceeds`) if less is refundable.
    Exactly(Money),
    /// All that is still refundable when the refund is applied — decided by the same conditional
    /// write that applies it, so a refund applied just before it is never counted twice (a
    /// refund order without an amount).
    Balance,
}

/// What applying a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now: `amount` added to the refunded total.
    Applied { amount: Money },
    /// This refund id was applied before (a retry): nothing changed; `amount` is what it was
    /// applied with.
    AlreadyApplied { amount: Money },
    /// It does not fit: only `refundable` is left (or the entry's status is not the one allowed).
    Exceeds { refundable: Money },
    /// `RefundAmount::Balance` found nothing left to refund.
    NothingRefundable,
    /// The entry has `limits::MAX_REFUNDS_PER_ORDER` refunds already (a refund, not a
    /// compensation, is refused for it: the entry must stay under DynamoDB's item limit).
    TooManyRefunds,
    Missing,
}

#[derive(Debug, Error)]
#[error("ledger unavailable: {0}")]
pub struct LedgerError(pub String);

#[async_trait]
/// Every method takes the order's task id (`keys::task_id`), never a raw order id.
pub trait Ledger: Send + Sync {
    async fn get(&self, order_id: &str) -> Result<Option<LedgerEntry>, LedgerError>;
    /// Writes the entry of a fresh charge; a second write for the same order keeps the first. A
    /// completing purchase does not call it (its reservation writes its entry:
    /// `Inventory::reserve`); one that found no stock does, and a compensation that found a
    /// charge without an entry.
    async fn record_charge(&self, entry: &LedgerEntry) -> Result<(), LedgerError>;
    /// Marks the purchase completed (idempotent). A purchase does not call it: its reservation
    /// completes the entry in the reservation's own transaction (`Inventory::reserve`).
    async fn complete(&self, order_id: &str, at: DateTime<Utc>) -> Result<(), LedgerError>;
    /// Adds `amount` (`Exactly` so much, or the `Balance` still refundable at that moment) to
    /// the refunded total under `refund_id` and sets the entry's status to `then`, unless that
    /// would exceed the charge or the entry is not `allowed` (completed, for refunds; charged,
    /// for compensation) — `Exceeds` —, or — for a refund (`then` is not `Compensated`) — the
    /// entry has `limits::MAX_REFUNDS_PER_ORDER` refunds already (`TooManyRefunds`), or a
    /// `Balance` is 0 (`NothingRefundable`). Once per `refund_id`: a repeat answers
    /// `AlreadyApplied` with the amount first applied. `Missing`: no entry.
    async fn apply_refund(&self, order_id: &str, refund_id: &str, amount: RefundAmount, allowed: EntryStatus, then: EntryStatus) -> Result<Applied, LedgerError>;
}

/// What a refund under `refund_id` may take from `entry` (`apply_refund`'s rule, as read): `Ok`
/// the minor units to apply, or `Err` the answer without applying anything — `AlreadyApplied`
/// (with the amount first applied), `TooManyRefunds` (a refund, not a compensation, past
/// `MAX_REFUNDS_PER_ORDER`), `Exceeds` (more than is refundable, or the entry's status is not
/// `allowed`), `NothingRefundable` (a `Balance` of 0). The DynamoDB ledger checks it before its
/// conditional write, which is what holds under concurrency; the in-memory ledger applies it.
pub fn refund_decision(entry: &LedgerEntry, refund_id: &str, amount: RefundAmount, allowed: EntryStatus, then: EntryStatus) -> Result<Money, Applied> {
    if let Some(&applied) = entry.refunds.get(refund_id) {
        return Err(Applied::AlreadyApplied { amount: applied });
    }
    if then != EntryStatus::Compensated && entry.refunds.len() >= MAX_REFUNDS_PER_ORDER {
        return Err(Applied::TooManyRefunds);
    }
    if entry.status != allowed {
        return Err(Applied::Exceeds { refundable: entry.refundable() });
    }
    let take = match amount {
        RefundAmount::Exactly(take) => take,
        RefundAmount::Balance if entry.refundable() == 0 => return Err(Applied::NothingRefundable),
        RefundAmount::Balance => entry.refundable(),
    };
    if take > entry.refundable() {
        return Err(Applied::Exceeds { refundable: entry.refundable() });
    }
    Ok(take)
}

pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into() }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> LedgerError {
    LedgerError(crate::dynamo::describe(&e))
}

fn attr<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("ledger fields serialise")
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn get(&self, order_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        crate::dynamo::get(&self.client, &self.table, "taskId", order_id)
            .await
            .map_err(unavailable)?
            .map(|item| serde_dynamo::from_item(item).map_err(|e| LedgerError(format!("entry {order_id} unreadable: {e}"))))
            .transpose()
    }

    async fn record_charge(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(entry).expect("entries serialise")))
            .condition_expression("attribute_not_exists(taskId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if crate::dynamo::conditional_failed(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn complete(&self, order_id: &str, at: DateTime<Utc>) -> Result<(), LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("taskId", AttributeValue::S(order_id.into()))
            .update_expression("SET #status = :completed, completedAt = :at")
            .condition_expression("#status = :charged")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", attr(&EntryStatus::Completed))
            .expression_attribute_values(":charged", attr(&EntryStatus::Charged))
            .expression_attribute_values(":at", attr(&at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if crate::dynamo::conditional_failed(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn apply_refund(&self, order_id: &str, refund_id: &str, amount: RefundAmount, allowed: EntryStatus, then: EntryStatus) -> Result<Applied, LedgerError> {
        // A compensation gives back what is owed whatever the count; only refunds are bounded.
        let bounded = then != EntryStatus::Compensated;
        // The entry is read, then written on a condition (a `Balance`: that nothing was refunded
        // meanwhile); a failed condition means another refund moved it, so it is read again. At
        // most `MAX_REFUNDS_PER_ORDER` other refunds can do that.
        for _ in 0..=MAX_REFUNDS_PER_ORDER + 1 {
            let Some(entry) = self.get(order_id).await? else { return Ok(Applied::Missing) };
            let take = match refund_decision(&entry, refund_id, amount, allowed, then) {
                Ok(take) => take,
                Err(answer) => return Ok(answer),
            };
            // The checks above are advisory; this condition is what holds under concurrency:
            // refunded may only grow while it stays within the charge (`Exactly`), or only from
            // the total the balance was read at (`Balance`).
            let mut condition = match amount {
                RefundAmount::Exactly(_) => "refunded <= :limit",
                RefundAmount::Balance => "refunded = :seen",
            }
            .to_string();
            condition.push_str(" AND #status = :allowed AND attribute_not_exists(refunds.#id)");
            if bounded {
                condition.push_str(" AND size(refunds) < :maxRefunds");
            }
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("taskId", AttributeValue::S(order_id.into()))
                .update_expression("SET refunded = refunded + :amount, refunds.#id = :amount, #status = :then")
                .condition_expression(condition)
                .expression_attribute_names("#id", refund_id)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":amount", attr(&take))
                .expression_attribute_values(":allowed", attr(&allowed))
                .expression_attribute_values(":then", attr(&then));
            let request = match amount {
                RefundAmount::Exactly(_) => request.expression_attribute_values(":limit", attr(&(entry.charged - take))),
                RefundAmount::Balance => request.expression_attribute_values(":seen", attr(&entry.refunded)),
            };
            let request = if bounded { request.expression_attribute_values(":maxRefunds", attr(&MAX_REFUNDS_PER_ORDER)) } else { request };
            match request.send().await {
                Ok(_) => return Ok(Applied::Applied { amount: take }),
                // Someone else moved the entry: read it again, and `refund_decision` tells which
                // way (this refund applied already, too many refunds, no longer fits).
                Err(e) if crate::dynamo::conditional_failed(&e) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(LedgerError(format!("entry {order_id} kept changing while refund {refund_id} was applied")))
    }
}
