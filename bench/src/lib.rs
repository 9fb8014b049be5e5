//! The worker-cost fixture shared by the bench binary and `cargo bench` (criterion): the purchase
//! service behind the shared SQS task-token driver, on in-memory ports, and work messages for it.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use std::time::Duration;
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, PurchaseWork, TaskStatus, TaskToken};
use taskflow_purchase::Purchase;
use taskflow_shared::driver::{Driver, Redelivery, RetryPolicy};
use taskflow_shared::fakes::{InMemoryInventory, InMemoryLedger, InMemoryPayments, InMemoryTaskStore, RecordingCallback};
use taskflow_shared::tasks::TaskRecord;

/// Redelivery that never waits (nothing is redelivered on the happy path measured).
pub struct NoDelay;

#[async_trait]
impl Redelivery for NoDelay {
    async fn delay(&self, _: &str, _: u32) -> Result<(), String> {
        Ok(())
    }
}

pub type PurchaseDriver = Driver<Purchase<InMemoryTaskStore, InMemoryPayments, InMemoryLedger, InMemoryInventory>, RecordingCallback, NoDelay>;

fn order_id(i: usize) -> String {
    format!("bench-{i}")
}

fn purchase_order(i: usize) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: order_id(i),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 1, unit_price: Some(1250) }],
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new("tok_approve")),
        refund_of: None,
        amount: None,
        attachments: Vec::new(),
    }
}

/// The purchase service behind the driver, with a RECEIVED task for each of orders
/// `from..from + count` and the stock for all of them.
pub fn purchase_driver(from: usize, count: usize) -> PurchaseDriver {
    let tasks = (from..from + count).map(purchase_order).map(|o| {
        let mut t = TaskRecord::new(&o.order_id, &o.owner, TaskStatus::Received, None, Utc::now());
        t.kind = Some(o.kind);
        t.amount = o.items_total().unwrap_or(0);
        t.currency = o.currency.clone();
        t
    });
    let ledger = InMemoryLedger::default();
    Driver {
        name: "purchase",
        worker: Purchase {
            tasks: InMemoryTaskStore::with(tasks),
            payments: InMemoryPayments::default(),
            inventory: InMemoryInventory::with(&[("BOOK-1", count as u64)]).completing(&ledger),
            ledger,
            charge_hold: taskflow_shared::idempotency::HOLD,
        },
        callback: RecordingCallback::default(),
        redelivery: NoDelay,
        policy: RetryPolicy { max_attempts: 5, base_delay_secs: 1, max_delay_secs: 20 },
        heartbeat_every: Duration::from_secs(60),
    }
}

/// Work messages for orders `from..from + count`, in SQS batches of 10, first deliveries.
pub fn purchase_batches(from: usize, count: usize) -> Vec<SqsEvent> {
    let orders: Vec<OrderSubmitted> = (from..from + count).map(purchase_order).collect();
    orders
        .chunks(10)
        .map(|chunk| {
            let mut event = SqsEvent::default();
            event.records = chunk
                .iter()
                .map(|o| {
                    let work = PurchaseWork { schema_version: 1, task_token: TaskToken::new(format!("t-{}", o.order_id)), order: o.clone(), trace_header: None };
                    let mut m = SqsMessage::default();
                    m.message_id = Some(o.order_id.clone());
                    m.receipt_handle = Some(o.order_id.clone());
                    m.body = Some(serde_json::to_string(&work).expect("work serialises"));
                    m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
                    m
                })
                .collect();
            event
        })
        .collect()
}
