use super::*;
use payments::{sandbox_outcome, Charge};
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, TaskToken};
use taskflow_shared::fakes::InMemoryTaskStore;

/// The sandbox's rules with its charges in memory.
#[derive(Default)]
struct FakePayments {
    /// key → (requests, charge id)
    charges: Mutex<HashMap<String, (u32, Option<String>)>>,
}

impl FakePayments {
    fn charges_made(&self) -> usize {
        self.charges.lock().unwrap().values().filter(|(_, id)| id.is_some()).count()
    }
}

#[async_trait]
impl PaymentProvider for FakePayments {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, PaymentError> {
        let mut charges = self.charges.lock().unwrap();
        let entry = charges.entry(request.idempotency_key.clone()).or_default();
        entry.0 += 1;
        if let Some(id) = &entry.1 {
            return Ok(Charge { charge_id: id.clone() });
        }
        sandbox_outcome(&request.payment_token, entry.0)?;
        let id = format!("ch_{}", request.order_id);
        entry.1 = Some(id.clone());
        Ok(Charge { charge_id: id })
    }
}

fn order(order_id: &str, token: &str) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: order_id.into(),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: 1250 }],
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new(token)),
        refund_of: None,
        amount: None,
    }
}

fn received(order: &OrderSubmitted) -> taskflow_shared::tasks::TaskRecord {
    let mut task = taskflow_shared::tasks::TaskRecord::new(&order.order_id, &order.owner, TaskStatus::Received, None, Utc::now());
    task.kind = Some(order.kind);
    task.amount = order.items_total().unwrap();
    task.currency = order.currency.clone();
    task
}

fn purchase_of(order: &OrderSubmitted) -> Purchase<InMemoryTaskStore, FakePayments> {
    Purchase { tasks: InMemoryTaskStore::with([received(order)]), payments: FakePayments::default() }
}

fn work(order: &OrderSubmitted) -> PurchaseWork {
    PurchaseWork { schema_version: 1, task_token: TaskToken::new("t"), order: order.clone() }
}

const FIRST: Attempt = Attempt { number: 1, last: false };

fn statuses(p: &Purchase<InMemoryTaskStore, FakePayments>, id: &str) -> Vec<TaskStatus> {
    p.tasks.snapshot(id).unwrap().history.iter().map(|h| h.status).collect()
}

#[tokio::test]
async fn an_approved_purchase_is_charged_once_and_completed() {
    let o = order("o-1", "tok_approve");
    let p = purchase_of(&o);
    let result = p.perform(&work(&o), FIRST).await.unwrap();
    assert_eq!(result, PurchaseResult { charge_id: "ch_o-1".into(), amount: 2500, currency: "EUR".into() });
    assert_eq!(statuses(&p, "o-1"), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    assert_eq!(p.tasks.snapshot("o-1").unwrap().charge_id.as_deref(), Some("ch_o-1"));
    assert_eq!(p.payments.charges_made(), 1);
}

#[tokio::test]
async fn a_duplicate_delivery_answers_the_stored_charge_without_charging_again() {
    let o = order("o-2", "tok_approve");
    let p = purchase_of(&o);
    let first = p.perform(&work(&o), FIRST).await.unwrap();
    let second = p.perform(&work(&o), FIRST).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(p.payments.charges.lock().unwrap()["o-2/charge"].0, 1, "the provider saw one request");
    assert_eq!(statuses(&p, "o-2").len(), 3, "no second history entry");
}

#[tokio::test]
async fn a_crash_after_charging_resumes_with_the_same_key_and_one_charge() {
    let o = order("o-3", "tok_approve");
    let p = purchase_of(&o);
    // The first delivery charged, then died before recording COMPLETED.
    p.tasks.transition("o-3", &[TaskStatus::Received], &Change::to(TaskStatus::Charging, Utc::now())).await.unwrap();
    p.payments.charge(&ChargeRequest {
        idempotency_key: charge_key("o-3"),
        order_id: "o-3".into(),
        amount: 2500,
        currency: "EUR".into(),
        payment_token: PaymentToken::new("tok_approve"),
    }).await.unwrap();
    let result = p.perform(&work(&o), Attempt { number: 2, last: false }).await.unwrap();
    assert_eq!(result.charge_id, "ch_o-3");
    assert_eq!(p.payments.charges_made(), 1);
    assert_eq!(p.tasks.snapshot("o-3").unwrap().status, TaskStatus::Completed);
}

#[tokio::test]
async fn a_decline_fails_the_task_with_its_reason_and_answers_by_name() {
    let o = order("o-4", "tok_insufficient_funds");
    let p = purchase_of(&o);
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert_eq!(err, StepError::failed(errors::PAYMENT_DECLINED, "insufficient_funds"));
    let task = p.tasks.snapshot("o-4").unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Failed, Some(Reason::PaymentDeclined)));
    assert_eq!(task.reason_detail.as_deref(), Some("insufficient_funds"));
    // Delivered again: same answer, no new history.
    assert_eq!(p.perform(&work(&o), FIRST).await.unwrap_err(), err);
    assert_eq!(statuses(&p, "o-4"), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Failed]);
}

#[tokio::test]
async fn an_unavailable_provider_is_retried_and_then_charges_once() {
    let o = order("o-5", "tok_flaky");
    let p = purchase_of(&o);
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { ref error, .. } if error == errors::PAYMENT_UNAVAILABLE));
    assert_eq!(p.tasks.snapshot("o-5").unwrap().status, TaskStatus::Charging);
    let result = p.perform(&work(&o), Attempt { number: 2, last: false }).await.unwrap();
    assert_eq!(result.charge_id, "ch_o-5");
    assert_eq!(p.payments.charges_made(), 1);
}

#[tokio::test]
async fn work_for_an_unknown_task_is_a_named_conflict() {
    let o = order("o-6", "tok_approve");
    let p = Purchase { tasks: InMemoryTaskStore::default(), payments: FakePayments::default() };
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::TASK_STATE_CONFLICT));
    assert_eq!(p.payments.charges_made(), 0);
}
