//! Refund: gives money back, for two reasons (`RefundWork.purpose`).
//!
//! **A refund order** (a customer asks for money back on an earlier order):
//! 1. The refund task RECEIVED is checked against the original order's ledger entry, looked up
//!    in the refunding owner's scope (`keys::task_id(owner, refundOf)`: another owner's order of
//!    that id is not theirs to see, so it is `ORDER_NOT_FOUND`): it must exist
//!    (`ORDER_NOT_FOUND`), belong to the same owner (`NOT_OWNER`, kept as a second check), have completed and not been
//!    compensated (`NOT_REFUNDABLE`), lie inside the refund window (`WINDOW_EXPIRED`), be in the same
//!    currency (`CURRENCY_MISMATCH`), and still have the amount refundable
//!    (`AMOUNT_EXCEEDS_REFUNDABLE`), and have had fewer than
//!    `limits::MAX_REFUNDS_PER_ORDER` refunds (`TOO_MANY_REFUNDS`: its ledger entry must stay
//!    under DynamoDB's item limit). A failed check → REJECTED with that reason, answered as
//!    `RefundRejected`. No amount means "all that is left" (nothing left: `NOT_REFUNDABLE`).
//! 2. RECEIVED → REFUNDING; the amount is taken from the ledger entry by a conditional write, so
//!    concurrent refunds of one order can never add up to more than it was charged (the loser is
//!    REJECTED `AMOUNT_EXCEEDS_REFUNDABLE`). A refund without an amount takes what is left at
//!    that write (`RefundAmount::Balance`), not what was left at the check: a refund applied in
//!    between makes it smaller, never rejected (nothing left by then: `NOT_REFUNDABLE`). A
//!    redelivery finds it applied and refunds the amount first applied.
//! 3. The provider refunds the original charge, keyed by the refund's task id (once per refund).
//! 4. REFUNDING → COMPLETED with the refund id and the amount refunded.
//!
//! **Above the approval threshold** (`approval_thresholds`, minor units per currency): a refund
//! that passed its checks but has no operator's approval recorded on its task is not refunded:
//! the task becomes AWAITING_APPROVAL (with the amount) and the step fails as `ApprovalRequired`,
//! which the workflow hands to the approval path. Once an operator approved it (`approval` on the task — the
//! record, never the work message, is what is trusted), the workflow asks again and the refund
//! goes ahead from AWAITING_APPROVAL, checked against the ledger once more.
//!
//! **A compensation** (a purchase that did not complete, for any reason but a declined payment):
//! whatever it charged is refunded and whatever stock it holds released, found from the provider
//! and the ledger rather than assumed, and the task ends FAILED with the failure's reason (see
//! `compensate`).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use taskflow_contracts::{keys, errors, Decision, Money, OrderSubmitted, Reason, RefundPurpose, RefundResult, RefundWork, StepFailure, TaskStatus};
use taskflow_shared::driver::{Attempt, StepError, TaskWorker};
use taskflow_shared::idempotency::{once, Idempotency};
use taskflow_shared::inventory::Inventory;
use taskflow_shared::ledger::{Applied, EntryStatus, Ledger, LedgerEntry, RefundAmount};
use taskflow_shared::payments::{persistently, PaymentError, PaymentProvider, RefundRequest};
use taskflow_shared::tasks::{Change, TaskRecord, TaskStore, Transitioned};

pub struct Refunds<S, P, L, I> {
    pub tasks: S,
    pub payments: P,
    pub ledger: L,
    pub inventory: I,
    /// How long after completion an order can be refunded.
    pub window: Duration,
    /// Guards each refund and each release of stock: once per key.
    pub once: Box<dyn Idempotency>,
    /// Refunds above these amounts (minor units, per currency) wait for an operator.
    pub approval_thresholds: ApprovalThresholds,
}

/// The approval threshold per currency, in minor units: a refund of more than it waits for an
/// operator. A currency without one needs no approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalThresholds(pub BTreeMap<String, Money>);

impl ApprovalThresholds {
    /// Reads `"EUR=10000,USD=10000"` (the template parameter `RefundApprovalThresholds`): a
    /// comma-separated list of `CURRENCY=MINOR_UNITS`. An empty text is no threshold at all.
    /// Errors name the entry that is not of that shape.
    pub fn parse(text: &str) -> Result<ApprovalThresholds, String> {
        let mut map = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (currency, amount) = entry.split_once('=').ok_or_else(|| format!("approval threshold {entry:?} is not CURRENCY=MINOR_UNITS"))?;
            let currency = currency.trim();
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("approval threshold {entry:?}: {currency:?} is not a currency code"));
            }
            let amount: Money = amount.trim().parse().map_err(|_| format!("approval threshold {entry:?}: not a whole number of minor units"))?;
            map.insert(currency.to_string(), amount);
        }
        Ok(ApprovalThresholds(map))
    }

    /// Whether refunding `amount` of `currency` needs an operator's approval.
    pub fn requires_approval(&self, currency: &str, amount: Money) -> bool {
        self.0.get(currency).is_some_and(|&threshold| amount > threshold)
    }
}

/// The key under which a compensation is applied to the ledger and sent to the provider.
pub const COMPENSATION: &str = "compensation";

/// Provider calls per delivery while it is unavailable (see `persistently`).
const PROVIDER_TRIES: u32 = 3;

fn retry(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StepError {
    move |e| StepError::retry(what, e.to_string())
}

/// Why a refund order may not go ahead, if it may not; else the amount it asks for now (all that
/// is refundable on `original`, when the order names none — which the ledger write may still
/// lower, see `RefundAmount::Balance`).
pub fn check(order: &OrderSubmitted, original: Option<&LedgerEntry>, window: Duration, now: DateTime<Utc>) -> Result<Money, Reason> {
    let entry = original.ok_or(Reason::OrderNotFound)?;
    if entry.owner != order.owner {
        return Err(Reason::NotOwner);
    }
    if entry.status != EntryStatus::Completed {
        return Err(Reason::NotRefundable);
    }
    if entry.completed_at.is_none_or(|at| at + window < now) {
        return Err(Reason::WindowExpired);
    }
    if entry.currency != order.currency {
        return Err(Reason::CurrencyMismatch);
    }
    if entry.refunds.len() >= taskflow_contracts::limits::MAX_REFUNDS_PER_ORDER {
        return Err(Reason::TooManyRefunds);
    }
    let amount = order.amount.unwrap_or(entry.refundable());
    if amount == 0 {
        return Err(Reason::NotRefundable);
    }
    if amount > entry.refundable() {
        return Err(Reason::AmountExceedsRefundable);
    }
    Ok(amount)
}

fn result_of(task: &TaskRecord) -> RefundResult {
    RefundResult { refund_id: task.refund_id.clone().unwrap_or_default(), amount: task.refunded, currency: task.currency.clone() }
}

impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> Refunds<S, P, L, I> {
    async fn task(&self, order_id: &str) -> Result<TaskRecord, StepError> {
        self.tasks
            .get(order_id)
            .await
            .map_err(|e| retry("TaskStoreUnavailable")(&e))?
            .ok_or_else(|| StepError::failed(errors::TASK_STATE_CONFLICT, "no task for this order"))
    }

    async fn step(&self, order_id: &str, from: &[TaskStatus], change: Change) -> Result<TaskRecord, StepError> {
        match self.tasks.transition(order_id, from, &change).await.map_err(|e| retry("TaskStoreUnavailable")(&e))? {
            Transitioned::Applied(task) => Ok(*task),
            Transitioned::Conflict(task) if task.status == change.to => Ok(*task),
            Transitioned::Conflict(task) => Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("task is {}", task.status))),
            Transitioned::Missing => Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
        }
    }

    /// REJECTED with `reason`, before any money moved: the task's amount becomes 0 (it refunds
    /// nothing; one rejected at the ledger's write showed the amount its check had found).
    async fn reject(&self, order_id: &str, from: TaskStatus, reason: Reason, detail: String) -> StepError {
        let change = Change::to(TaskStatus::Rejected, Utc::now()).because(reason, Some(detail.clone())).with_amount(0);
        match self.step(order_id, &[from], change).await {
            Ok(_) => StepError::failed(errors::REFUND_REJECTED, format!("{reason}: {detail}")),
            Err(e) => e,
        }
    }

    async fn pay_back(&self, key: String, entry: &LedgerEntry, amount: Money) -> Result<String, StepError> {
        let request = RefundRequest {
            idempotency_key: key,
            order_id: entry.order_id.clone(),
            charge_id: entry.charge_id.clone(),
            amount,
            currency: entry.currency.clone(),
        };
        // Money owed goes back: a blip of the provider is retried on the spot, a few times.
        let call = persistently(PROVIDER_TRIES, || self.payments.refund(&request));
        let refund = once(&*self.once, &request.idempotency_key, taskflow_shared::metrics::timed("RefundLatency", &[("Service", "refund")], call)).await;
        refund.map(|r| r.refund_id).map_err(|e| {
            StepError::from_once(e, |e| match e {
                PaymentError::Unavailable(cause) => StepError::retry(errors::PAYMENT_UNAVAILABLE, cause),
                // A provider refusing to refund its own charge is not something a retry fixes.
                PaymentError::Declined { code } => StepError::failed("RefundDeclined", code),
            })
        })
    }

    async fn refund_order(&self, order: &OrderSubmitted) -> Result<RefundResult, StepError> {
        let task_id = keys::task_id(&order.owner, &order.order_id);
        let id = task_id.as_str();
        let task = self.task(id).await?;
        let original_id = order.refund_of.clone().unwrap_or_default();
        // `refundOf` names one of the refunding owner's own orders: another owner's order with
        // that id is not in this owner's scope, so it is simply not found.
        let original_key = keys::task_id(&order.owner, &original_id);
        match (task.status, task.reason) {
            (TaskStatus::Completed, _) => return Ok(result_of(&task)),
            (TaskStatus::Rejected, reason) => {
                let reason = reason.map_or("REJECTED", |r| r.as_str());
                return Err(StepError::failed(errors::REFUND_REJECTED, reason));
            }
            (TaskStatus::Received | TaskStatus::Refunding, _) => {}
            // Only an approval recorded on the task lets a waiting refund go ahead.
            (TaskStatus::AwaitingApproval, _) if task.approval.as_ref().is_some_and(|a| a.decision == Decision::Approved) => {}
            (TaskStatus::AwaitingApproval, _) => return Err(StepError::failed(errors::APPROVAL_REQUIRED, "waiting for an operator's decision")),
            (status, _) => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("task is {status}"))),
        }
        let original = self.ledger.get(&original_key).await.map_err(|e| retry("LedgerUnavailable")(&e))?;

        let amount = if matches!(task.status, TaskStatus::Received | TaskStatus::AwaitingApproval) {
            let amount = match check(order, original.as_ref(), self.window, Utc::now()) {
                Ok(amount) => amount,
                Err(reason) => return Err(self.reject(id, task.status, reason, format!("refund of {original_id}")).await),
            };
            if task.status == TaskStatus::Received && self.approval_thresholds.requires_approval(&order.currency, amount) {
                // Not refunded until an operator says so: the task waits with its amount, and the
                // workflow takes it to the approval path (which keeps the task token).
                self.step(id, &[TaskStatus::Received], Change::to(TaskStatus::AwaitingApproval, Utc::now()).with_amount(amount)).await?;
                return Err(StepError::failed(errors::APPROVAL_REQUIRED, format!("{amount} {} is above the approval threshold", order.currency)));
            }
            self.step(id, &[task.status], Change::to(TaskStatus::Refunding, Utc::now()).with_amount(amount)).await?;
            amount
        } else {
            task.amount
        };
        let entry = original.ok_or_else(|| StepError::failed(errors::TASK_STATE_CONFLICT, "original vanished"))?;

        // No amount: what is left when the ledger applies it, decided by that same write.
        let asked = if order.amount.is_some() { RefundAmount::Exactly(amount) } else { RefundAmount::Balance };
        let amount = match self
            .ledger
            .apply_refund(&original_key, id, asked, EntryStatus::Completed, EntryStatus::Completed)
            .await
            .map_err(|e| retry("LedgerUnavailable")(&e))?
        {
            Applied::Applied { amount } | Applied::AlreadyApplied { amount } => amount,
            Applied::NothingRefundable => {
                let detail = format!("nothing is left to refund on {original_id}");
                return Err(self.reject(id, TaskStatus::Refunding, Reason::NotRefundable, detail).await);
            }
            Applied::Exceeds { refundable } => {
                let detail = format!("{amount} asked, {refundable} still refundable on {original_id}");
                return Err(self.reject(id, TaskStatus::Refunding, Reason::AmountExceedsRefundable, detail).await);
            }
            Applied::TooManyRefunds => {
                let detail = format!("{original_id} has had {} refunds, the most one order may have", taskflow_contracts::limits::MAX_REFUNDS_PER_ORDER);
                return Err(self.reject(id, TaskStatus::Refunding, Reason::TooManyRefunds, detail).await);
            }
            Applied::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "original vanished")),
        };
        let refund_id = self.pay_back(format!("{id}/refund"), &entry, amount).await?;
        let done = self
            .step(id, &[TaskStatus::Refunding], Change::to(TaskStatus::Completed, Utc::now()).with_refund(&refund_id, amount).with_amount(amount))
            .await?;
        Ok(result_of(&done))
    }

    /// Undoes what a purchase that did not complete may have done, whatever stopped it (out of
    /// stock after the charge, the provider unavailable until the retries ran out, a crashed
    /// delivery whose step timed out, …):
    /// 1. fences the task: RECEIVED/CHARGING → REFUNDING with the failure's reason, after which no
    ///    purchase delivery charges or reserves for it;
    /// 2. waits out a charge in progress: the fence returns the task, and while its charge hold
    ///    (`chargeHeldUntil`, set by the purchase delivery that moved it to CHARGING or took the
    ///    charge over) has not passed, a live delivery may still charge, so the compensation is
    ///    retried after it (`CHARGE_IN_PROGRESS`). Once it has passed, no delivery can charge any
    ///    more: the task is no longer CHARGING (no delivery can hold the charge anew) and the
    ///    last holder is past its function timeout;
    /// 3. asks the provider what was charged under the order's charge key — the truth even when a
    ///    delivery died between charging and writing the ledger;
    /// 4. if something was: releases the stock it may hold, refunds all of it, and marks the
    ///    ledger entry compensated (writing the entry first if the purchase never did);
    /// 5. ends the task FAILED with the reason, and the refund if there was one.
    async fn compensate(&self, order: &OrderSubmitted, failure: Option<&StepFailure>) -> Result<RefundResult, StepError> {
        let task_id = keys::task_id(&order.owner, &order.order_id);
        let id = task_id.as_str();
        let task = self.task(id).await?;
        let (reason, detail, fenced) = match (task.status, task.reason) {
            (TaskStatus::Failed, _) => return Ok(result_of(&task)),
            // Cancelled before the charge (cancel and charge are both fenced on RECEIVED): nothing
            // was charged or reserved, so there is nothing to give back.
            (TaskStatus::Cancelled, _) => return Ok(result_of(&task)),
            (TaskStatus::Refunding, Some(reason)) => (reason, task.reason_detail.clone(), task.clone()),
            (TaskStatus::Received | TaskStatus::Charging, _) => {
                let reason = errors::reason_for(failure.map(|f| f.error.as_str()));
                let detail = failure.map(|f| f.cause.clone().unwrap_or_else(|| f.error.clone()));
                let fence = Change::to(TaskStatus::Refunding, Utc::now()).because(reason, detail.clone());
                let fenced = self.step(id, &[TaskStatus::Received, TaskStatus::Charging], fence).await?;
                (reason, detail, fenced)
            }
            (status, _) => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("task is {status}"))),
        };

        let charge_key = taskflow_shared::payments::charge_key(id);
        if let Some(until) = fenced.charge_hold(self.once.hold()).filter(|until| *until > Utc::now()) {
            // Come back when the hold has surely ended: its holder done, or dead.
            let left = (until - Utc::now()).num_seconds().max(0);
            let after = u32::try_from(left).unwrap_or(u32::MAX).saturating_add(1);
            return Err(StepError::retry_after(errors::CHARGE_IN_PROGRESS, charge_key, after));
        }
        let charge = match persistently(PROVIDER_TRIES, || self.payments.find_charge(&charge_key)).await {
            Ok(charge) => charge,
            Err(e) => {
                let cause = match e {
                    PaymentError::Unavailable(cause) => cause,
                    PaymentError::Declined { code } => code,
                };
                return Err(StepError::retry(errors::PAYMENT_UNAVAILABLE, cause));
            }
        };
        let Some(charge) = charge else {
            // Nothing charged, so nothing reserved either (stock is reserved after the charge).
            let done = self.step(id, &[TaskStatus::Refunding], Change::to(TaskStatus::Failed, Utc::now()).because(reason, detail)).await?;
            return Ok(result_of(&done));
        };
        let entry = match self.ledger.get(id).await.map_err(|e| retry("LedgerUnavailable")(&e))? {
            Some(entry) => entry,
            None => {
                // The purchase died between the charge and its ledger entry: write it now.
                let entry = LedgerEntry::charged(&task, &charge.charge_id, &order.items);
                self.ledger.record_charge(&entry).await.map_err(|e| retry("LedgerUnavailable")(&e))?;
                self.ledger
                    .get(id)
                    .await
                    .map_err(|e| retry("LedgerUnavailable")(&e))?
                    .ok_or_else(|| StepError::retry("LedgerUnavailable", "entry not readable after writing it"))?
            }
        };
        once(&*self.once, &format!("{id}/release"), self.inventory.release(id, &entry.items))
            .await
            .map_err(|e| StepError::from_once(e, |e| retry("InventoryUnavailable")(&e)))?;
        let amount = entry.refunds.get(COMPENSATION).copied().unwrap_or(entry.refundable());
        // A purchase may have completed its ledger entry and then failed to record its task.
        let allowed = if entry.status == EntryStatus::Completed { EntryStatus::Completed } else { EntryStatus::Charged };
        match self
            .ledger
            .apply_refund(id, COMPENSATION, RefundAmount::Exactly(amount), allowed, EntryStatus::Compensated)
            .await
            .map_err(|e| retry("LedgerUnavailable")(&e))?
        {
            Applied::Applied { .. } | Applied::AlreadyApplied { .. } => {}
            other => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("cannot compensate: {other:?}"))),
        }
        let refund_id = self.pay_back(format!("{id}/{COMPENSATION}"), &entry, amount).await?;
        let change = Change::to(TaskStatus::Failed, Utc::now()).because(reason, detail).with_refund(&refund_id, amount);
        let done = self.step(id, &[TaskStatus::Refunding], change).await?;
        Ok(result_of(&done))
    }
}

impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> Refunds<S, P, L, I> {
    /// Finishes a task left in flight, through the same idempotent path as a work message (the
    /// sweeper's way in): a purchase is compensated (`failure` names why, for a task not yet
    /// fenced; a REFUNDING task keeps its recorded reason), a refund order is refunded. Every
    /// effect is keyed as the workflow's own, so whatever the workflow already did is not done
    /// again, and a workflow step running at the same time is harmless.
    pub async fn finish(&self, order: &OrderSubmitted, failure: Option<&StepFailure>) -> Result<RefundResult, StepError> {
        match order.kind {
            taskflow_contracts::OrderKind::Purchase => self.compensate(order, failure).await,
            taskflow_contracts::OrderKind::Refund => self.refund_order(order).await,
        }
    }
}

#[async_trait]
impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> TaskWorker for Refunds<S, P, L, I> {
    type Work = RefundWork;
    type Output = RefundResult;

    async fn perform(&self, work: &RefundWork, _attempt: Attempt) -> Result<RefundResult, StepError> {
        match work.purpose {
            RefundPurpose::Refund => self.refund_order(&work.order).await,
            RefundPurpose::Compensation => self.compensate(&work.order, work.failure.as_ref()).await,
        }
    }
}

#[cfg(test)]
mod tests;
