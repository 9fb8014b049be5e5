//! The receipt an owner gets: a purchase receipt, a refund receipt, or a failure notice — plain
//! text rendered from the task record alone, so rendering it again gives the same document.

use taskflow_contracts::keys::{self, KeyError};
use taskflow_contracts::{Money, OrderKind, OwnerId, TaskStatus};
use taskflow_shared::tasks::TaskRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `receipts/{owner segment}/{orderId}/{STATUS}.txt` (`keys::object_key`): owner first, one
    /// prefix per owner, so access can be granted per owner by prefix.
    pub key: String,
    pub subject: String,
    pub body: String,
}

/// Minor units as a decimal amount (every currency taskflow takes has two decimals).
pub fn money(amount: Money, currency: &str) -> String {
    format!("{}.{:02} {currency}", amount / 100, amount % 100)
}

/// The task's receipt; an error (and no receipt) if its owner or order id cannot be part of a
/// key, which intake never lets a task have.
pub fn render(task: &TaskRecord) -> Result<Receipt, KeyError> {
    let owner = OwnerId::parse(&task.owner).map_err(|e| KeyError(e.to_string()))?;
    let key = keys::object_key("receipts", &owner, &task.order_id, &format!("{}.txt", task.status))?;
    let what = task.kind.map_or("order", |k| k.as_str());
    let reason = task.reason.map_or(String::new(), |r| match &task.reason_detail {
        Some(detail) => format!("{r} ({detail})"),
        None => r.to_string(),
    });
    let subject = match (task.status, task.kind) {
        (TaskStatus::Completed, Some(OrderKind::Refund)) => format!("Refund {} of {}", task.order_id, money(task.refunded, &task.currency)),
        (TaskStatus::Completed, _) => format!("Receipt for your {what} {}", task.order_id),
        (status, _) => format!("Your {what} {} is {status}: {reason}", task.order_id),
    };
    let mut lines = vec![
        "taskflow".to_string(),
        subject.clone(),
        String::new(),
        format!("Order     {} ({what})", task.order_id),
        format!("Owner     {}", task.owner),
        format!("Status    {}", task.status),
        format!("Updated   {}", task.updated_at.format("%Y-%m-%d %H:%M:%S UTC")),
    ];
    if let Some(of) = &task.refund_of {
        lines.push(format!("Refund of {of}"));
    }
    if !task.items.is_empty() {
        lines.push(String::new());
        for item in &task.items {
            // Intake recorded every line with the catalogue's price.
            let unit_price = item.unit_price.unwrap_or_default();
            let line_total = unit_price.saturating_mul(u64::from(item.quantity));
            lines.push(format!(
                "  {:<16} {:>4} × {:>14}  {:>16}",
                item.sku,
                item.quantity,
                money(unit_price, &task.currency),
                money(line_total, &task.currency)
            ));
        }
        lines.push(format!("  {:<38}  {:>16}", "Total", money(task.amount, &task.currency)));
    }
    lines.push(String::new());
    if let Some(charge) = &task.charge_id {
        lines.push(format!("Charged   {} ({charge})", money(task.amount, &task.currency)));
    }
    if let Some(refund) = &task.refund_id {
        lines.push(format!("Refunded  {} ({refund})", money(task.refunded, &task.currency)));
    }
    if !reason.is_empty() {
        lines.push(format!("Reason    {reason}"));
    }
    Ok(Receipt { key, subject, body: lines.join("\n") + "\n" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use taskflow_contracts::{OrderItem, Reason};
    use taskflow_shared::tasks::Change;

    #[test]
    fn money_is_never_floating_point() {
        assert_eq!(money(2599, "EUR"), "25.99 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(u64::MAX, "EUR"), "184467440737095516.15 EUR");
    }

    #[test]
    fn a_purchase_receipt_lists_lines_total_and_charge_under_an_owner_key() {
        let mut task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        task.currency = "EUR".into();
        task.items = vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(1250) }];
        task.amount = 2500;
        Change::to(TaskStatus::Completed, Utc::now()).with_charge("ch_1").apply(&mut task);
        let receipt = render(&task).unwrap();
        assert_eq!(receipt.key, "receipts/YWxpY2U/o-1/COMPLETED.txt");
        assert!(receipt.body.contains("BOOK-1"));
        assert!(receipt.body.contains("12.50 EUR") && receipt.body.contains("25.00 EUR"));
        assert!(receipt.body.contains("ch_1"));
        assert_eq!(render(&task).unwrap(), receipt, "rendering is repeatable");
    }

    #[test]
    fn a_compensated_purchase_notice_says_why_and_what_came_back() {
        let mut task = TaskRecord::new("o-2", "bob", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        task.currency = "EUR".into();
        task.amount = 900;
        Change::to(TaskStatus::Failed, Utc::now())
            .because(Reason::OutOfStock, Some("not enough MUG-1".into()))
            .with_refund("re_9", 900)
            .apply(&mut task);
        let receipt = render(&task).unwrap();
        assert!(receipt.subject.contains("FAILED") && receipt.subject.contains("OUT_OF_STOCK"));
        assert!(receipt.body.contains("Refunded  9.00 EUR (re_9)"));
    }

    #[test]
    fn no_receipt_key_from_an_owner_that_is_not_one() {
        for owner in ["bob/x", "../admin", ".", ""] {
            let task = TaskRecord::new("o-3", owner, TaskStatus::Completed, None, Utc::now());
            assert!(render(&task).is_err(), "{owner:?}");
        }
        let task = TaskRecord::new("o-3", "bob+shop@example.com", TaskStatus::Completed, None, Utc::now());
        assert_eq!(render(&task).unwrap().key, "receipts/Ym9iK3Nob3BAZXhhbXBsZS5jb20/o-3/COMPLETED.txt");
    }
}
