//! Pricing a purchase from the catalogue: the catalogue is the only source of what is charged.
//!
//! Every line is checked against its sku's catalogue entry, in the order's line order, and the
//! first broken rule wins:
//! - no entry → `UNKNOWN_SKU`;
//! - entry not `active` → `SKU_INACTIVE`;
//! - the order's `currency` is not the entry's → `CURRENCY_MISMATCH`;
//! - a stated `unitPrice` that is not the entry's → `PRICE_MISMATCH` (a stated price is a
//!   check the submitter asks for, never what is charged).
//!
//! Then the total (catalogue price × quantity, summed) must fit and be at most
//! [`MAX_ORDER_AMOUNT`] (`AMOUNT_TOO_LARGE`), and a purchase's stated `amount`, if any, must equal
//! it (`PRICE_MISMATCH`). The priced order carries the catalogue's price on every line and the
//! total as `amount`: it is what the task records and what the workflow (and so the purchase
//! service, which charges the task's amount) gets.

use crate::validate::{Rejection, MAX_ORDER_AMOUNT};
use std::collections::HashMap;
use taskflow_contracts::{Money, OrderSubmitted, Reason};
use taskflow_shared::catalogue::CatalogueEntry;

/// `order` (a validated purchase) priced from `catalogue` (its skus' entries; missing = unknown).
pub fn price(order: &OrderSubmitted, catalogue: &HashMap<String, CatalogueEntry>) -> Result<(OrderSubmitted, Money), Rejection> {
    let reject = |reason, detail: String| Rejection { reason, detail };
    let mut priced = order.clone();
    for item in &mut priced.items {
        let Some(entry) = catalogue.get(&item.sku) else {
            return Err(reject(Reason::UnknownSku, format!("sku {:?} is not in the catalogue", item.sku)));
        };
        if !entry.active {
            return Err(reject(Reason::SkuInactive, format!("sku {:?} is no longer sold", item.sku)));
        }
        if entry.currency != order.currency {
            return Err(reject(
                Reason::CurrencyMismatch,
                format!("sku {:?} is sold in {}, the order is in {}", item.sku, entry.currency, order.currency),
            ));
        }
        match item.unit_price {
            Some(stated) if stated != entry.unit_price => {
                return Err(reject(
                    Reason::PriceMismatch,
                    format!("sku {:?}: unitPrice {stated} is not the catalogue's {} {}", item.sku, entry.unit_price, entry.currency),
                ));
            }
            _ => item.unit_price = Some(entry.unit_price),
        }
    }
    let total = match priced.items_total() {
        Some(total) if total <= MAX_ORDER_AMOUNT => total,
        _ => return Err(reject(Reason::AmountTooLarge, format!("the total at catalogue prices is above {MAX_ORDER_AMOUNT}"))),
    };
    if let Some(stated) = order.amount.filter(|stated| *stated != total) {
        return Err(reject(Reason::PriceMismatch, format!("amount {stated} is not the total at catalogue prices, {total}")));
    }
    priced.amount = Some(total);
    Ok((priced, total))
}
