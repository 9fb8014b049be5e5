//! `taskflow demo`: a handful of orders through a fresh local stack, watched as an outside
//! subscriber would, with a summary that says whether each ended where it should.

use crate::{line, new_order_id};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use taskflow::client::{Client, StatusFeed};
use taskflow::local::{LocalStack, Options};
use std::collections::HashMap;
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, Reason, TaskStatus, TaskStatusChanged, SCHEMA_VERSION};

struct Sample {
    order_id: String,
    owner: &'static str,
    what: &'static str,
    expect: (TaskStatus, Option<Reason>),
    /// Sent as raw JSON, so it can be invalid.
    detail: String,
}

/// A purchase of `items` (sku, quantity) with no prices stated: the catalogue prices it.
fn purchase(order_id: &str, owner: &str, items: &[(&str, u32)], token: &str) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: SCHEMA_VERSION,
        order_id: order_id.into(),
        owner: owner.into(),
        kind: OrderKind::Purchase,
        items: items.iter().map(|(sku, quantity)| OrderItem { sku: sku.to_string(), quantity: *quantity, unit_price: None }).collect(),
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new(token)),
        refund_of: None,
        amount: None,
        attachments: Vec::new(),
    }
}

fn refund(order_id: &str, owner: &str, of: &str, amount: Option<u64>) -> OrderSubmitted {
    OrderSubmitted {
        kind: OrderKind::Refund,
        items: vec![],
        payment_token: None,
        refund_of: Some(of.into()),
        amount,
        ..purchase(order_id, owner, &[], "")
    }
}

fn json(order: &OrderSubmitted) -> String {
    serde_json::to_string(order).expect("orders serialise")
}

/// The purchases, and then the refunds of some of them (a refund needs its order completed).
fn samples() -> (Vec<Sample>, Vec<Sample>) {
    let ids: Vec<String> = (0..12).map(|_| new_order_id()).collect();
    let mut invalid = purchase(&ids[4], "erin", &[("MUG-1", 1)], "tok_approve");
    invalid.currency = "XXX".into();
    // The lamp is 45.99 in the catalogue: a client that says 0.01 is refused, not obeyed.
    let mut underpriced = purchase(&ids[6], "mallory", &[("LAMP-1", 3)], "tok_approve");
    underpriced.items[0].unit_price = Some(1);
    let sample = |i: usize, owner: &'static str, what: &'static str, expect: (TaskStatus, Option<Reason>), order: &OrderSubmitted| Sample {
        order_id: ids[i].clone(),
        owner,
        what,
        expect,
        detail: json(order),
    };
    let purchases = vec![
        sample(0, "alice", "purchase, approved", (TaskStatus::Completed, None), &purchase(&ids[0], "alice", &[("BOOK-1", 2)], "tok_approve")),
        sample(1, "bob", "purchase, two lines", (TaskStatus::Completed, None), &purchase(&ids[1], "bob", &[("BOOK-1", 1), ("PEN-1", 3)], "tok_approve")),
        sample(2, "carol", "purchase, provider flaky once", (TaskStatus::Completed, None), &purchase(&ids[2], "carol", &[("LAMP-1", 1)], "tok_flaky")),
        sample(3, "dave", "purchase, card declined", (TaskStatus::Failed, Some(Reason::PaymentDeclined)), &purchase(&ids[3], "dave", &[("BOOK-1", 1)], "tok_decline")),
        sample(4, "erin", "invalid: unknown currency", (TaskStatus::Rejected, Some(Reason::UnsupportedCurrency)), &invalid),
        sample(5, "frank", "out of stock after charge", (TaskStatus::Failed, Some(Reason::OutOfStock)), &purchase(&ids[5], "frank", &[("RARE-1", 2)], "tok_approve")),
        sample(6, "mallory", "lamp at 0.01 (catalogue 45.99)", (TaskStatus::Rejected, Some(Reason::PriceMismatch)), &underpriced),
        sample(7, "grace", "a sku no longer sold", (TaskStatus::Rejected, Some(Reason::SkuInactive)), &purchase(&ids[7], "grace", &[("OLD-1", 1)], "tok_approve")),
    ];
    let refunds = vec![
        sample(8, "alice", "refund 10.00 of alice's", (TaskStatus::Completed, None), &refund(&ids[8], "alice", &ids[0], Some(1000))),
        sample(9, "bob", "refund all of bob's", (TaskStatus::Completed, None), &refund(&ids[9], "bob", &ids[1], None)),
        sample(10, "mallory", "refund of alice's by mallory", (TaskStatus::Rejected, Some(Reason::OrderNotFound)), &refund(&ids[10], "mallory", &ids[0], None)),
        sample(11, "alice", "refund 99.00 of alice's", (TaskStatus::Rejected, Some(Reason::AmountExceedsRefundable)), &refund(&ids[11], "alice", &ids[0], Some(9900))),
    ];
    (purchases, refunds)
}

/// Refunds above the approval threshold (100.00 EUR): two purchases of three lamps (137.97),
/// then a full refund of each, which waits for an operator: one approved, one denied.
fn approval_samples() -> (Vec<Sample>, Vec<Sample>) {
    let ids: Vec<String> = (0..4).map(|_| new_order_id()).collect();
    let sample = |i: usize, owner: &'static str, what: &'static str, expect: (TaskStatus, Option<Reason>), order: &OrderSubmitted| Sample {
        order_id: ids[i].clone(),
        owner,
        what,
        expect,
        detail: json(order),
    };
    let purchases = vec![
        sample(0, "henry", "three lamps (137.97)", (TaskStatus::Completed, None), &purchase(&ids[0], "henry", &[("LAMP-1", 3)], "tok_approve")),
        sample(1, "ines", "three lamps (137.97)", (TaskStatus::Completed, None), &purchase(&ids[1], "ines", &[("LAMP-1", 3)], "tok_approve")),
    ];
    let refunds = vec![
        sample(2, "henry", "refund 137.97: approved", (TaskStatus::Completed, None), &refund(&ids[2], "henry", &ids[0], None)),
        sample(3, "ines", "refund 137.97: denied", (TaskStatus::Rejected, Some(Reason::RefundDenied)), &refund(&ids[3], "ines", &ids[1], None)),
    ];
    (purchases, refunds)
}

/// An operator (olga, a token of the `operators` group) approves the first refund and denies the
/// second, through the HTTP API's operator routes, once each waits AWAITING_APPROVAL.
async fn decide_approvals(stack: &LocalStack, state_dir: &std::path::Path, refunds: &[Sample]) -> Result<()> {
    let api = stack.info.output("ApiUrl").unwrap_or_default().to_string();
    let token = taskflow::operator::local_token(state_dir, "olga", 600)?;
    for (sample, (what, body)) in refunds.iter().zip([
        ("approve", serde_json::json!({"owner": refunds[0].owner, "reason": "long-standing customer"})),
        ("deny", serde_json::json!({"owner": refunds[1].owner, "reason": "the lamps were never returned"})),
    ]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, answer) = taskflow::operator::request(&api, "POST", &format!("/approvals/{}/{what}", sample.order_id), &token, Some(&body)).await?;
            // The approval path may not have recorded the task token yet: ask again shortly.
            if (status == 409 && answer["error"] == "ApprovalNotReady") || (status == 404 && tokio::time::Instant::now() < deadline) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            println!("operator olga: {what} {} of {} → HTTP {status} {}", sample.order_id, sample.owner, answer["note"].as_str().or(answer["error"].as_str()).unwrap_or(""));
            break;
        }
    }
    Ok(())
}

/// Runs the demo; with `console`, then keeps the stack up and serves the console on it (its
/// port, or any free one) until Ctrl-C, to look at the demo's orders in a browser.
pub async fn run(state_dir: PathBuf, console: Option<u16>) -> Result<()> {
    eprintln!("starting the local stack (two moto servers, template, functions)…");
    let stack = LocalStack::start(Options::new(&state_dir)).await?;
    eprintln!("stack up in {:.1} s at {}", stack.started_in.as_secs_f64(), stack.info.endpoint.as_deref().unwrap_or_default());
    let result = drive(&stack, &state_dir).await;
    if let Some(port) = console {
        let served = match taskflow::console::start_in(stack.info.clone(), port, &state_dir).await {
            Ok(c) => Ok(c),
            Err(_) => taskflow::console::start_in(stack.info.clone(), 0, &state_dir).await,
        };
        match served {
            Ok(c) => {
                println!("\nconsole   {}   (the demo's orders; Ctrl-C to stop)", c.url());
                let _ = tokio::signal::ctrl_c().await;
                c.stop().await;
            }
            Err(e) => eprintln!("console not started: {e:#}"),
        }
    }
    stack.stop().await;
    let _ = std::fs::remove_file(state_dir.join("stack.json"));
    match result {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("some orders did not end as expected (logs in {})", state_dir.join("logs").display()),
        Err(e) => Err(e),
    }
}

async fn drive(stack: &LocalStack, state_dir: &std::path::Path) -> Result<bool> {
    let client = Client::connect(&stack.info).await?;
    let feed = StatusFeed::open(&stack.info).await?;
    let (mut purchases, mut refunds) = samples();
    let (big_purchases, big_refunds) = approval_samples();
    let mut seen = HashMap::new();
    println!("status events as they arrive:");
    for phase in [&purchases, &refunds, &big_purchases] {
        for sample in phase.iter() {
            client.submit_detail(&sample.detail).await?;
            println!("submitted {:<18} {:<7} {}", sample.order_id, sample.owner, sample.what);
        }
        follow(&feed, phase, &mut seen).await?;
    }
    // Refunds above the approval threshold wait for an operator.
    for sample in big_refunds.iter() {
        client.submit_detail(&sample.detail).await?;
        println!("submitted {:<18} {:<7} {}", sample.order_id, sample.owner, sample.what);
    }
    let collector = follow(&feed, &big_refunds, &mut seen);
    let (followed, decided) = tokio::join!(collector, decide_approvals(stack, state_dir, &big_refunds));
    followed?;
    decided?;
    // Cancellations, over the HTTP API as their owner: one before its charge, one after.
    let cancels = cancellations(stack, state_dir, &client, &purchases[0], &feed, &mut seen).await?;
    feed.close().await;
    purchases.extend(big_purchases);
    refunds.extend(big_refunds);

    println!("\n{:<18} {:<7} {:<30} {:<32} {:<32} {:>9} {}", "ORDER", "OWNER", "WHAT", "EXPECTED", "GOT", "AMOUNT", "STATUS EVENTS");
    let mut all_ok = true;
    for sample in purchases.iter().chain(&refunds).chain(&cancels) {
        let task = client.find(Some(sample.owner), &sample.order_id).await?;
        let got = task.as_ref().map(|t| (t.status, t.reason));
        let mut events: Vec<TaskStatusChanged> = seen.remove(&sample.order_id).unwrap_or_default();
        events.sort_by_key(|e| e.sequence);
        let trail: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
        let ok = got == Some(sample.expect) && events.last().map(|e| e.status) == Some(sample.expect.0);
        all_ok &= ok;
        let show = |s: Option<(TaskStatus, Option<Reason>)>| match s {
            Some((status, Some(reason))) => format!("{status} {reason}"),
            Some((status, None)) => status.to_string(),
            None => "no task".into(),
        };
        // Purchases: the total at catalogue prices (refunds: the amount refunded).
        let amount = task.as_ref().map_or(0, |t| if t.kind == Some(OrderKind::Refund) { t.refunded } else { t.amount });
        println!(
            "{:<18} {:<7} {:<30} {:<32} {:<32} {:>9} {} {}",
            sample.order_id, sample.owner, sample.what, show(Some(sample.expect)), show(got), amount, trail.join("→"),
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    println!("\n{}", if all_ok { "demo passed: every order reached the status it should" } else { "demo FAILED" });
    Ok(all_ok)
}

/// heidi cancels a purchase while it waits for its charge (`DELETE /orders/{id}`: CANCELLED,
/// nothing charged; if the charge wins the race the cancel is refused and she tries another, up
/// to five), and alice tries to cancel her order that was charged (409 `OrderAlreadyCharged`, the
/// order stays COMPLETED).
async fn cancellations(
    stack: &LocalStack,
    state_dir: &std::path::Path,
    client: &Client,
    charged: &Sample,
    feed: &StatusFeed,
    seen: &mut HashMap<String, Vec<TaskStatusChanged>>,
) -> Result<Vec<Sample>> {
    let api = stack.info.output("ApiUrl")?.to_string();
    let issuer = taskflow::auth::Issuer::load(&state_dir.join(taskflow::local::TOKEN_ISSUER_FILE))?;
    let mut samples = Vec::new();
    let heidi = issuer.token("heidi", 600)?;
    for attempt in 1..=5 {
        let id = new_order_id();
        let order = purchase(&id, "heidi", &[("MUG-1", 1)], "tok_approve");
        client.submit(&order).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.find(Some("heidi"), &id).await?.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, answer) = taskflow::operations::http(&api, "DELETE", &format!("/orders/{id}"), Some(&heidi)).await?;
        println!("DELETE /orders/{id} as heidi → {status} {answer}");
        let cancelled = status == 200;
        // The last try must land: the demo shows a cancellation, or fails.
        let expect = if cancelled || attempt == 5 { (TaskStatus::Cancelled, Some(Reason::CancelledByOwner)) } else { (TaskStatus::Completed, None) };
        let what = if cancelled { "cancelled before its charge" } else { "cancel lost the race: charged" };
        samples.push(Sample { order_id: id, owner: "heidi", what, expect, detail: json(&order) });
        if cancelled || attempt == 5 {
            break;
        }
    }
    let alice = issuer.token(charged.owner, 600)?;
    let (status, answer) = taskflow::operations::http(&api, "DELETE", &format!("/orders/{}", charged.order_id), Some(&alice)).await?;
    println!("DELETE /orders/{} as alice (charged) → {status} {answer}", charged.order_id);
    if status != 409 {
        anyhow::bail!("a cancel of a charged order answered {status}, not 409 OrderAlreadyCharged");
    }
    follow(feed, &samples, seen).await?;
    Ok(samples)
}

/// Prints status events until every sample of `phase` has a terminal one (or 90 s pass).
async fn follow(feed: &StatusFeed, phase: &[Sample], seen: &mut HashMap<String, Vec<TaskStatusChanged>>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let done = |seen: &HashMap<String, Vec<TaskStatusChanged>>| {
        phase.iter().all(|s| seen.get(&s.order_id).is_some_and(|v| v.iter().any(|e| e.status.is_terminal())))
    };
    while !done(seen) && tokio::time::Instant::now() < deadline {
        for event in feed.next(Duration::from_secs(1)).await? {
            let events = seen.entry(event.order_id.clone()).or_default();
            if !events.iter().any(|e| e.event_id == event.event_id) {
                println!("{}", line(&event));
                events.push(event);
            }
        }
    }
    Ok(())
}
