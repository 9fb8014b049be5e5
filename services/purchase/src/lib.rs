//! Purchase: charges an order, reserves its stock, and records both.
//!
//! What a purchase does, in order:
//! 1. RECEIVED → CHARGING (conditional: only one delivery moves it), which also reads the task
//!    (the update returns it: no read before it) and holds the charge for this delivery:
//!    `chargeHeldUntil` = now + the hold (`IDEMPOTENCY_HOLD_SECONDS`, longer than the function
//!    timeout), in the same write. Found CHARGING → a delivery that did not finish: resumed if
//!    its hold has passed (its holder is dead: Lambda ends an invocation at its timeout), taking
//!    the charge over with one conditional write on the old hold (of two such deliveries one
//!    wins); still held → `STEP_IN_PROGRESS`, retried later. Already COMPLETED → answer with the
//!    stored charge (a duplicate delivery); already FAILED or REFUNDING → answer with the
//!    recorded failure. Nothing is charged again.
//! 2. Charge the task's amount (the total at catalogue prices, fixed by intake; never a price
//!    from the message), keyed by the task id (`keys::task_id` of owner and order id): the provider returns the same charge for the
//!    same key — approved or declined — so a retry after a crash never charges twice (no
//!    idempotency record needed). The task's charge hold is the fence a compensation takes:
//!    refund's `compensate` moves the task to REFUNDING and then waits out the hold it finds, so
//!    a delivery already past step 1 cannot charge after the compensation looked.
//!    Declined → FAILED
//!    `PAYMENT_DECLINED`; provider unavailable → the hold is given up (the next delivery need not
//!    wait it out) and retried by redelivery, and when the retries run out the step fails as
//!    `PaymentUnavailable` and the failure path records it.
//! 3. Reserve the stock, all lines or none, once, and write the ledger entry of the charge in the
//!    same transaction (completed, with its stock mark: the entry's only write): a repeat finds
//!    the mark and answers `Reserved` without taking stock again (no idempotency record needed
//!    either). A crash between the charge and this transaction leaves a charge without an entry:
//!    the redelivery charges again by the same key (the same charge) and writes it; a
//!    compensation asks the provider for the charge by its key and writes the entry itself.
//!    Out of stock → the entry of the charge alone (conditional: a repeat keeps the first), then
//!    REFUNDING (`OUT_OF_STOCK`, ending the charge hold), answered as `OutOfStock`: the state
//!    machine sends the order to the refund service, which refunds the charge and ends the task
//!    FAILED.
//! 4. Task COMPLETED with the charge id.
//!
//! A task its owner CANCELLED (only possible while RECEIVED: the cancel and step 2 are both
//! conditional on RECEIVED, so one wins) is answered `OrderCancelled` and nothing is charged.

use async_trait::async_trait;
use chrono::Utc;
use taskflow_contracts::{errors, PurchaseResult, PurchaseWork, Reason, TaskStatus};
use taskflow_shared::driver::{Attempt, StepError, TaskWorker};
use taskflow_shared::inventory::{Inventory, Reserved};
use taskflow_shared::metrics;
use taskflow_shared::ledger::{Ledger, LedgerEntry};
use taskflow_shared::payments::{ChargeRequest, PaymentError, PaymentProvider};
use taskflow_shared::tasks::{Change, TaskRecord, TaskStore, Transitioned};
use tracing::info;

pub struct Purchase<S, P, L, I> {
    pub tasks: S,
    pub payments: P,
    pub ledger: L,
    pub inventory: I,
    /// How long a delivery holds the charge (`chargeHeldUntil`, step 1): longer than the
    /// function timeout (`idempotency::hold_from_env`).
    pub charge_hold: chrono::Duration,
}

fn unavailable(what: &str) -> impl Fn(&dyn std::fmt::Display) -> StepError + '_ {
    move |e| StepError::retry(what, e.to_string())
}

pub use taskflow_shared::payments::charge_key;

/// The answer for a task that is already past charging.
fn settled(task: &TaskRecord) -> Result<PurchaseResult, StepError> {
    let detail = task.reason_detail.clone().unwrap_or_default();
    match (task.status, task.reason) {
        (TaskStatus::Completed, _) => Ok(PurchaseResult {
            charge_id: task.charge_id.clone().unwrap_or_default(),
            amount: task.amount,
            currency: task.currency.clone(),
        }),
        (TaskStatus::Failed, Some(Reason::PaymentDeclined)) => Err(StepError::failed(errors::PAYMENT_DECLINED, detail)),
        (TaskStatus::Refunding | TaskStatus::Failed, Some(Reason::OutOfStock)) => Err(StepError::failed(errors::OUT_OF_STOCK, detail)),
        // Its owner cancelled it before the charge (`cancel`): nothing is charged, nothing to undo.
        (TaskStatus::Cancelled, _) => Err(StepError::failed(errors::ORDER_CANCELLED, detail)),
        (status, _) => Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("task is {status}"))),
    }
}

impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> Purchase<S, P, L, I> {
    async fn step(&self, order_id: &str, from: TaskStatus, change: Change) -> Result<(), StepError> {
        let store = unavailable("TaskStoreUnavailable");
        match self.tasks.transition(order_id, &[from], &change).await.map_err(|e| store(&e))? {
            Transitioned::Applied(_) => Ok(()),
            Transitioned::Conflict(current) if current.status == change.to => Ok(()),
            Transitioned::Conflict(current) => settled(&current).map(|_| ()),
            Transitioned::Missing => Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
        }
    }
}

#[async_trait]
impl<S: TaskStore, P: PaymentProvider, L: Ledger, I: Inventory> TaskWorker for Purchase<S, P, L, I> {
    type Work = PurchaseWork;
    type Output = PurchaseResult;

    async fn perform(&self, work: &PurchaseWork, _attempt: Attempt) -> Result<PurchaseResult, StepError> {
        let order = &work.order;
        // Everything is keyed by the task id: order ids are scoped per owner (`keys`).
        let task_id = taskflow_contracts::keys::task_id(&order.owner, &order.order_id);
        let id = task_id.as_str();
        // The conditional move to CHARGING returns the task (ALL_NEW, or the task as it is when
        // the condition fails): one call where a read and a write were. It holds the charge for
        // this delivery in the same write (step 1).
        let store = unavailable("TaskStoreUnavailable");
        let now = Utc::now();
        let charging = Change::to(TaskStatus::Charging, now).holding_charge_until(now + self.charge_hold);
        let task = match self.tasks.transition(id, &[TaskStatus::Received], &charging).await.map_err(|e| store(&e))? {
            Transitioned::Applied(task) => *task,
            Transitioned::Conflict(task) if task.status == TaskStatus::Charging => {
                let busy = || StepError::retry(errors::STEP_IN_PROGRESS, charge_key(id));
                if task.charge_hold(self.charge_hold).is_some_and(|until| until > now) {
                    // Another delivery holds the charge right now.
                    return Err(busy());
                }
                // Its holder is past its timeout: take the charge over (one wins).
                match self.tasks.hold_charge(id, task.charge_held_until, now + self.charge_hold).await.map_err(|e| store(&e))? {
                    Transitioned::Applied(task) => {
                        info!(order_id = order.order_id.as_str(), task_id = id, "resuming a purchase that did not finish");
                        *task
                    }
                    Transitioned::Conflict(task) if task.status == TaskStatus::Charging => return Err(busy()),
                    Transitioned::Conflict(task) => return settled(&task),
                    Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
                }
            }
            Transitioned::Conflict(task) => return settled(&task),
            Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "no task for this order")),
        };

        let request = ChargeRequest {
            idempotency_key: charge_key(id),
            order_id: order.order_id.clone(),
            amount: task.amount,
            currency: task.currency.clone(),
            payment_token: order.payment_token.clone().unwrap_or_else(|| taskflow_contracts::PaymentToken::new("")),
        };
        let started = std::time::Instant::now();
        // Once by the provider's idempotency key (a repeat gets the first answer, approval or
        // decline), under the task's charge hold a compensation fences with (step 2 above).
        let charge = match metrics::timed("ChargeLatency", &[("Service", "purchase")], self.payments.charge(&request)).await {
            Ok(charge) => {
                // The line the "slowest charges" Logs Insights query reads (infra/template.yaml).
                info!(
                    order_id = order.order_id.as_str(),
                    charge_id = charge.charge_id.as_str(),
                    charge_ms = started.elapsed().as_millis() as u64,
                    amount = task.amount,
                    currency = task.currency.as_str(),
                    "charged"
                );
                charge
            }
            Err(PaymentError::Declined { code }) => {
                let change = Change::to(TaskStatus::Failed, Utc::now()).because(Reason::PaymentDeclined, Some(code.clone()));
                self.step(id, TaskStatus::Charging, change).await?;
                return Err(StepError::failed(errors::PAYMENT_DECLINED, code));
            }
            Err(e) => {
                // Give the hold up (if still ours), so the next delivery charges at once rather
                // than after the hold; best effort: failing that, it waits the hold out.
                if let Some(held) = task.charge_held_until {
                    let _ = self.tasks.hold_charge(id, Some(held), Utc::now()).await;
                }
                return Err(StepError::retry(errors::PAYMENT_UNAVAILABLE, e.to_string()));
            }
        };

        // What is charged and recorded is what intake priced from the catalogue and put on the
        // task (amount and lines), never a price carried in the message.
        let items = if task.items.is_empty() { &order.items } else { &task.items };
        let entry = LedgerEntry::charged(&task, &charge.charge_id, items);

        // Once by the ledger entry's stock mark, written in the reservation's own transaction:
        // a repeat answers Reserved (or Fenced) and takes nothing, so no idempotency record
        // (claim + complete: 2 write units and 2 calls) guards it any more. The same write is the
        // entry's only one (`Inventory::reserve`): no `Ledger::record_charge` before it (a third
        // ledger write unit per purchase) and no `Ledger::complete` after it.
        let reserved = self.inventory.reserve(&entry, &order.items).await.map_err(|e| unavailable("InventoryUnavailable")(&e))?;
        match reserved {
            Reserved::Reserved => {}
            // A compensation took over meanwhile and gave the stock back: it refunds the charge too.
            Reserved::Fenced => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "stock closed by a compensation")),
            Reserved::OutOfStock { sku } => {
                // The charge's entry, which the compensation that follows refunds.
                self.ledger.record_charge(&entry).await.map_err(|e| unavailable("LedgerUnavailable")(&e))?;
                let detail = format!("not enough {sku} in stock after the charge");
                // The charge is over: the compensation that follows need not wait out the hold.
                let now = Utc::now();
                let change = Change::to(TaskStatus::Refunding, now)
                    .because(Reason::OutOfStock, Some(detail.clone()))
                    .with_charge(&charge.charge_id)
                    .holding_charge_until(now);
                self.step(id, TaskStatus::Charging, change).await?;
                return Err(StepError::failed(errors::OUT_OF_STOCK, detail));
            }
        }
        self.step(id, TaskStatus::Charging, Change::to(TaskStatus::Completed, Utc::now()).with_charge(&charge.charge_id)).await?;
        Ok(PurchaseResult { charge_id: charge.charge_id, amount: task.amount, currency: task.currency })
    }
}

#[cfg(test)]
mod tests;
