//! Every business path of the task domain, end to end on the real local stack: purchases with
//! stock, compensation after a charge, refunds asked for (full, partial, too much, not yours,
//! unknown, concurrent, the rest beside a partial one), receipts in S3. After each, the ledger
//! and the payment provider agree and the stock adds up.

use taskflow_contracts::{Reason, TaskStatus};
use taskflow_e2e::{order_id, purchase, refund, stack, statuses, Run};

/// A completed purchase of 4 × 25.00 of a fresh sku (stock 10); returns (order id, sku).
async fn completed_purchase(run: &Run, owner: &str) -> (String, String) {
    let sku = run.new_sku("ITEM", 10, 2500).await;
    let id = order_id("buy");
    run.submit(purchase(&id, owner, &[(&sku, 4, 2500)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(events.last().unwrap().status, TaskStatus::Completed, "{events:?}");
    (id, sku)
}

async fn read_object(run: &Run, key: &str) -> String {
    let object = aws_sdk_s3::Client::new(&run.aws)
        .get_object()
        .bucket(stack().output("TaskBucketName").unwrap())
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    assert_eq!(object.server_side_encryption().map(|s| s.as_str()), Some("AES256"), "{key} is encrypted at rest");
    String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purchase_completes_reserves_its_stock_and_leaves_a_receipt_and_a_notice() {
    let run = Run::new().await;
    let sku = run.new_sku("BOOK", 10, 1250).await;
    let id = order_id("receipt");
    run.submit(purchase(&id, "alice", &[(&sku, 3, 1250), ("PEN-1", 1, 199)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    assert_eq!(run.available(&sku).await, 7);

    // The receipt is recorded once the notification step ran.
    let key = format!("receipts/YWxpY2U/{id}/COMPLETED.txt"); // alice's prefix: base64url of her id
    let mut task = run.task(&id).await;
    for _ in 0..50 {
        if !task.receipts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        task = run.task(&id).await;
    }
    assert_eq!(task.receipts, vec![key.clone()]);
    let receipt = read_object(&run, &key).await;
    assert!(receipt.contains(&id) && receipt.contains(&sku), "{receipt}");
    assert!(receipt.contains("39.49 EUR"), "the total 3 × 12.50 + 1.99: {receipt}");
    let notices = run.outbox("alice", &id).await;
    assert_eq!(notices.len(), 1, "one notice: {notices:?}");
    assert!(notices[0].starts_with(&format!("outbox/YWxpY2U/{id}/COMPLETED-")));
    let notice = read_object(&run, &notices[0]).await;
    assert!(notice.contains(&key), "the notice points at the receipt: {notice}");

    let entry = run.ledger(&id).await.unwrap();
    assert_eq!((entry.charged, entry.refunded), (3949, 0));
    run.assert_balanced(&id).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_purchase_fails_and_moves_no_money_and_no_stock() {
    let run = Run::new().await;
    let sku = run.new_sku("LAMP", 5, 4599).await;
    let id = order_id("decline");
    run.submit(purchase(&id, "dave", &[(&sku, 1, 4599)], "tok_decline")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Failed]);
    assert_eq!(events[2].reason.as_deref(), Some("PAYMENT_DECLINED"));
    assert_eq!(run.available(&sku).await, 5);
    assert!(run.ledger(&id).await.is_none());
    run.assert_balanced(&id).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_stock_after_the_charge_is_refunded_and_fails_with_stock_unchanged() {
    let run = Run::new().await;
    let plenty = run.new_sku("MUG", 10, 900).await;
    let scarce = run.new_sku("RARE", 1, 25000).await;
    let id = order_id("oos");
    run.submit(purchase(&id, "frank", &[(&plenty, 2, 900), (&scarce, 2, 25000)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(
        statuses(&events),
        [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Refunding, TaskStatus::Failed]
    );
    assert_eq!(events[3].reason.as_deref(), Some("OUT_OF_STOCK"));

    let task = run.task(&id).await;
    assert_eq!(task.reason, Some(Reason::OutOfStock));
    assert_eq!(task.refunded, 51_800, "the whole charge came back");
    assert!(task.refund_id.is_some() && task.charge_id.is_some());
    let (charges, charged, refunds, refunded) = run.provider(&id).await;
    assert_eq!((charges, charged, refunds, refunded), (1, 51_800, 1, 51_800));
    let entry = run.ledger(&id).await.unwrap();
    assert_eq!(entry.refundable(), 0);
    assert_eq!((run.available(&plenty).await, run.available(&scarce).await), (10, 1), "stock unchanged overall");
    run.assert_balanced(&id).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_refund_completes_and_gives_back_the_whole_order() {
    let run = Run::new().await;
    let (original, _) = completed_purchase(&run, "alice").await;
    let id = order_id("full");
    run.submit(refund(&id, "alice", &original, None)).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Refunding, TaskStatus::Completed]);
    let task = run.task(&id).await;
    assert_eq!((task.amount, task.refunded), (10_000, 10_000));
    assert_eq!(run.ledger(&original).await.unwrap().refundable(), 0);
    run.assert_balanced(&original).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_refunds_that_fit_add_up_and_one_that_exceeds_is_rejected() {
    let run = Run::new().await;
    let (original, _) = completed_purchase(&run, "bob").await;
    let (first, second, third) = (order_id("part1"), order_id("part2"), order_id("part3"));
    run.submit(refund(&first, "bob", &original, Some(3_000))).await;
    assert_eq!(run.events_until_terminal(&first).await.last().unwrap().status, TaskStatus::Completed);
    run.submit(refund(&second, "bob", &original, Some(6_000))).await;
    assert_eq!(run.events_until_terminal(&second).await.last().unwrap().status, TaskStatus::Completed);
    run.submit(refund(&third, "bob", &original, Some(2_000))).await;
    let events = run.events_until_terminal(&third).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Rejected]);
    assert_eq!(events[1].reason.as_deref(), Some("AMOUNT_EXCEEDS_REFUNDABLE"));

    let entry = run.ledger(&original).await.unwrap();
    assert_eq!((entry.refunded, entry.refundable()), (9_000, 1_000));
    run.assert_balanced(&original).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_by_another_owner_is_rejected_order_not_found() {
    let run = Run::new().await;
    let (original, _) = completed_purchase(&run, "alice").await;
    let id = order_id("mallory");
    run.submit(refund(&id, "mallory", &original, Some(100))).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Rejected]);
    // Order ids are per owner: mallory's refundOf names her own (non-existent) order, and
    // alice's order is not even acknowledged as existing.
    assert_eq!(events[1].reason.as_deref(), Some("ORDER_NOT_FOUND"));
    assert_eq!(run.ledger(&original).await.unwrap().refunded, 0);
    run.assert_balanced(&original).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_of_an_unknown_order_is_rejected() {
    let run = Run::new().await;
    let id = order_id("unknown");
    run.submit(refund(&id, "alice", "no-such-order", None)).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Rejected]);
    assert_eq!(events[1].reason.as_deref(), Some("ORDER_NOT_FOUND"));
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refunds_never_exceed_the_order_total() {
    let run = Run::new().await;
    let (original, sku) = completed_purchase(&run, "carol").await;
    // Five refunds of 30.00 on a 100.00 order, published in one call so they arrive together.
    let ids: Vec<String> = (0..5).map(|i| order_id(&format!("race{i}"))).collect();
    let entries = ids.iter().map(|id| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("taskflow.orders")
            .detail_type("OrderSubmitted")
            .event_bus_name(stack().output("EventBusName").unwrap())
            .detail(refund(id, "carol", &original, Some(3_000)).to_string())
            .build()
    });
    let out = aws_sdk_eventbridge::Client::new(&run.aws).put_events().set_entries(Some(entries.collect())).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0);

    let all = run.all_until_terminal(&ids).await;
    let ends: Vec<_> = ids.iter().map(|id| all[id].last().unwrap().clone()).collect();
    let completed = ends.iter().filter(|e| e.status == TaskStatus::Completed).count();
    let exceeded = ends.iter().filter(|e| e.reason.as_deref() == Some("AMOUNT_EXCEEDS_REFUNDABLE")).count();
    assert_eq!((completed, exceeded), (3, 2), "{ends:?}");
    let entry = run.ledger(&original).await.unwrap();
    assert_eq!(entry.refunded, 9_000);
    assert_eq!(entry.refunds.len(), 3);
    assert_eq!(run.available(&sku).await, 6, "refunds move money, not stock");
    run.assert_balanced(&original).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_without_an_amount_beside_a_partial_one_refunds_what_is_left_and_never_more() {
    let run = Run::new().await;
    // Three orders, each with a partial refund (30.00) and a refund of the rest (no amount),
    // published in one call so each pair is processed at the same moment.
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let (original, _) = completed_purchase(&run, "dora").await;
        pairs.push((original, order_id("part"), order_id("rest")));
    }
    let entries = pairs.iter().flat_map(|(original, part, rest)| {
        [refund(part, "dora", original, Some(3_000)), refund(rest, "dora", original, None)].map(|detail| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("taskflow.orders")
                .detail_type("OrderSubmitted")
                .event_bus_name(stack().output("EventBusName").unwrap())
                .detail(detail.to_string())
                .build()
        })
    });
    let out = aws_sdk_eventbridge::Client::new(&run.aws).put_events().set_entries(Some(entries.collect())).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0);

    let ids: Vec<String> = pairs.iter().flat_map(|(_, part, rest)| [part.clone(), rest.clone()]).collect();
    let all = run.all_until_terminal(&ids).await;
    for (original, part, rest) in &pairs {
        // The rest is refunded whichever came first; the partial fits unless the rest took it all.
        let rest_end = all[rest].last().unwrap().clone();
        assert_eq!(rest_end.status, TaskStatus::Completed, "{rest}: {:?}", all[rest]);
        let part_end = all[part].last().unwrap().clone();
        let part_refunded = match (part_end.status, part_end.reason.as_deref()) {
            (TaskStatus::Completed, _) => 3_000,
            (TaskStatus::Rejected, Some("AMOUNT_EXCEEDS_REFUNDABLE")) => 0,
            other => panic!("{part}: {other:?}"),
        };
        let task = run.task(rest).await;
        assert_eq!((task.amount, task.refunded), (10_000 - part_refunded, 10_000 - part_refunded), "{rest}");
        let entry = run.ledger(original).await.unwrap();
        assert_eq!((entry.refunded, entry.refundable()), (10_000, 0), "never more than was charged");
        run.assert_balanced(original).await;
    }
    run.close().await;
}
