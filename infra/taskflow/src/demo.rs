//! `taskflow demo`: a handful of orders through a fresh local stack, watched as an outside
//! subscriber would, with a summary that says whether each ended where it should.

use crate::{line, new_order_id};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use taskflow::client::{Client, StatusFeed};
use taskflow::local::{LocalStack, Options};
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, Reason, TaskStatus, SCHEMA_VERSION};

struct Sample {
    order_id: String,
    owner: &'static str,
    what: &'static str,
    expect: (TaskStatus, Option<Reason>),
    /// Sent as raw JSON, so it can be invalid.
    detail: String,
}

fn purchase(order_id: &str, owner: &str, items: &[(&str, u32, u64)], token: &str) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: SCHEMA_VERSION,
        order_id: order_id.into(),
        owner: owner.into(),
        kind: OrderKind::Purchase,
        items: items.iter().map(|(sku, quantity, unit_price)| OrderItem { sku: sku.to_string(), quantity: *quantity, unit_price: *unit_price }).collect(),
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new(token)),
        refund_of: None,
        amount: None,
    }
}

fn samples() -> Vec<Sample> {
    let id = |_| new_order_id();
    let ids: Vec<String> = (0..6).map(id).collect();
    let json = |o: &OrderSubmitted| serde_json::to_string(o).expect("orders serialise");
    let mut invalid = purchase(&ids[4], "erin", &[("MUG-1", 1, 900)], "tok_approve");
    invalid.currency = "XXX".into();
    let refund = OrderSubmitted {
        kind: OrderKind::Refund,
        items: vec![],
        payment_token: None,
        refund_of: Some(ids[0].clone()),
        amount: Some(500),
        ..purchase(&ids[5], "alice", &[], "")
    };
    vec![
        Sample { order_id: ids[0].clone(), owner: "alice", what: "purchase, approved", expect: (TaskStatus::Completed, None),
            detail: json(&purchase(&ids[0], "alice", &[("BOOK-1", 2, 1250)], "tok_approve")) },
        Sample { order_id: ids[1].clone(), owner: "bob", what: "purchase, two lines", expect: (TaskStatus::Completed, None),
            detail: json(&purchase(&ids[1], "bob", &[("BOOK-1", 1, 1250), ("PEN-1", 3, 199)], "tok_approve")) },
        Sample { order_id: ids[2].clone(), owner: "carol", what: "purchase, provider flaky once", expect: (TaskStatus::Completed, None),
            detail: json(&purchase(&ids[2], "carol", &[("LAMP-1", 1, 4599)], "tok_flaky")) },
        Sample { order_id: ids[3].clone(), owner: "dave", what: "purchase, card declined", expect: (TaskStatus::Failed, Some(Reason::PaymentDeclined)),
            detail: json(&purchase(&ids[3], "dave", &[("BOOK-1", 1, 1250)], "tok_decline")) },
        Sample { order_id: ids[4].clone(), owner: "erin", what: "invalid: unknown currency", expect: (TaskStatus::Rejected, Some(Reason::UnsupportedCurrency)),
            detail: json(&invalid) },
        Sample { order_id: ids[5].clone(), owner: "alice", what: "refund (not in this version)", expect: (TaskStatus::Failed, Some(Reason::RefundNotAvailable)),
            detail: json(&refund) },
    ]
}

pub async fn run(state_dir: PathBuf) -> Result<()> {
    eprintln!("starting the local stack (moto server, template, functions)…");
    let stack = LocalStack::start(Options::new(&state_dir)).await?;
    eprintln!("stack up in {:.1} s at {}", stack.started_in.as_secs_f64(), stack.info.endpoint.as_deref().unwrap_or_default());
    let result = drive(&stack).await;
    stack.stop().await;
    let _ = std::fs::remove_file(state_dir.join("stack.json"));
    match result {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("some orders did not end as expected (logs in {})", state_dir.join("logs").display()),
        Err(e) => Err(e),
    }
}

async fn drive(stack: &LocalStack) -> Result<bool> {
    let client = Client::connect(&stack.info).await?;
    let feed = StatusFeed::open(&stack.info).await?;
    let samples = samples();
    for sample in &samples {
        client.submit_detail(&sample.detail).await?;
        println!("submitted {:<18} {:<6} {}", sample.order_id, sample.owner, sample.what);
    }
    println!("\nstatus events as they arrive:");
    let ids: Vec<String> = samples.iter().map(|s| s.order_id.clone()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen: std::collections::HashMap<String, Vec<taskflow_contracts::TaskStatusChanged>> = Default::default();
    while tokio::time::Instant::now() < deadline {
        for event in feed.next(Duration::from_secs(1)).await? {
            if ids.contains(&event.order_id) && !seen.get(&event.order_id).is_some_and(|v| v.iter().any(|e| e.event_id == event.event_id)) {
                println!("{}", line(&event));
                seen.entry(event.order_id.clone()).or_default().push(event);
            }
        }
        if ids.iter().all(|id| seen.get(id).is_some_and(|v| v.iter().any(|e| e.status.is_terminal()))) {
            break;
        }
    }
    feed.close().await;

    println!("\n{:<18} {:<6} {:<30} {:<30} {:<30} {}", "ORDER", "OWNER", "WHAT", "EXPECTED", "GOT", "STATUS EVENTS");
    let mut all_ok = true;
    for sample in &samples {
        let task = client.task(&sample.order_id).await?;
        let got = task.as_ref().map(|t| (t.status, t.reason));
        let mut events = seen.remove(&sample.order_id).unwrap_or_default();
        events.sort_by_key(|e| e.sequence);
        let trail: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
        let announced_end = events.last().map(|e| e.status);
        let ok = got == Some(sample.expect) && announced_end == Some(sample.expect.0);
        all_ok &= ok;
        let show = |s: Option<(TaskStatus, Option<Reason>)>| match s {
            Some((status, Some(reason))) => format!("{status} {reason}"),
            Some((status, None)) => status.to_string(),
            None => "no task".into(),
        };
        println!(
            "{:<18} {:<6} {:<30} {:<30} {:<30} {} {}",
            sample.order_id, sample.owner, sample.what, show(Some(sample.expect)), show(got), trail.join("→"),
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    println!("\n{}", if all_ok { "demo passed: every order reached the status it should" } else { "demo FAILED" });
    Ok(all_ok)
}
