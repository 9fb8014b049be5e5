//! The bad-input corpus: every kind of bad order and bad message ends somewhere named — a REJECTED
//! task with its reason (and its status event) where there is an order to reject, a dead-letter
//! queue entry where there is not. Nothing is silently dropped.

use serde_json::{json, Value};
use std::time::Duration;
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{order_id, purchase, refund, stack, Run};

fn base(id: &str) -> Value {
    purchase(id, "alice", &[("BOOK-1", 1, 1250), ("PEN-1", 2, 199)], "tok_approve")
}

type Edit = fn(&mut Value);

/// (kind, how to break a valid order, expected status, expected reason)
fn corpus() -> Vec<(&'static str, Edit, TaskStatus, &'static str)> {
    use TaskStatus::{Failed, Rejected};
    vec![
        ("missing schemaVersion", |d| { d.as_object_mut().unwrap().remove("schemaVersion"); }, Rejected, "MALFORMED_ORDER"),
        ("unknown schemaVersion", |d| d["schemaVersion"] = json!(2), Rejected, "UNSUPPORTED_SCHEMA_VERSION"),
        ("schemaVersion as text", |d| d["schemaVersion"] = json!("1"), Rejected, "UNSUPPORTED_SCHEMA_VERSION"),
        ("missing owner", |d| { d.as_object_mut().unwrap().remove("owner"); }, Rejected, "MALFORMED_ORDER"),
        ("owner not a string", |d| d["owner"] = json!(42), Rejected, "MALFORMED_ORDER"),
        ("blank owner", |d| d["owner"] = json!("   "), Rejected, "INVALID_OWNER"),
        ("owner too long (255 bytes)", |d| d["owner"] = json!("o".repeat(255)), Rejected, "INVALID_OWNER"),
        ("owner too long (128 two-byte letters)", |d| d["owner"] = json!("é".repeat(128)), Rejected, "INVALID_OWNER"),
        ("owner with a slash", |d| d["owner"] = json!("bob/x"), Rejected, "INVALID_OWNER"),
        ("owner climbing out (../admin)", |d| d["owner"] = json!("../admin"), Rejected, "INVALID_OWNER"),
        ("owner '.'", |d| d["owner"] = json!("."), Rejected, "INVALID_OWNER"),
        ("owner '..'", |d| d["owner"] = json!(".."), Rejected, "INVALID_OWNER"),
        ("owner with a leading dot", |d| d["owner"] = json!(".alice"), Rejected, "INVALID_OWNER"),
        ("owner with a trailing dot", |d| d["owner"] = json!("alice."), Rejected, "INVALID_OWNER"),
        ("owner with a backslash", |d| d["owner"] = json!("bob\\x"), Rejected, "INVALID_OWNER"),
        ("owner with a newline", |d| d["owner"] = json!("alice\nbob"), Rejected, "INVALID_OWNER"),
        ("owner with a NUL", |d| d["owner"] = json!("alice\u{0}"), Rejected, "INVALID_OWNER"),
        ("owner with a zero-width space", |d| d["owner"] = json!("ali\u{200b}ce"), Rejected, "INVALID_OWNER"),
        ("owner with a bidi override", |d| d["owner"] = json!("\u{202e}ecila"), Rejected, "INVALID_OWNER"),
        ("owner not in NFC", |d| d["owner"] = json!("\u{212b}sa"), Rejected, "INVALID_OWNER"),
        ("owner with a URL-encoded slash", |d| d["owner"] = json!("bob%2F..%2Fx"), Rejected, "INVALID_OWNER"),
        ("orderId with spaces", |d| d["orderId"] = json!(format!("{} x", d["orderId"].as_str().unwrap())), Rejected, "INVALID_ORDER_ID"),
        ("unknown kind", |d| d["kind"] = json!("gift"), Rejected, "MALFORMED_ORDER"),
        ("missing currency", |d| { d.as_object_mut().unwrap().remove("currency"); }, Rejected, "MALFORMED_ORDER"),
        ("unknown currency", |d| d["currency"] = json!("XXX"), Rejected, "UNSUPPORTED_CURRENCY"),
        ("lower-case currency", |d| d["currency"] = json!("eur"), Rejected, "UNSUPPORTED_CURRENCY"),
        ("empty items", |d| d["items"] = json!([]), Rejected, "NO_ITEMS"),
        ("items not a list", |d| d["items"] = json!({"sku": "BOOK-1"}), Rejected, "MALFORMED_ORDER"),
        ("zero quantity", |d| d["items"][0]["quantity"] = json!(0), Rejected, "INVALID_ITEM"),
        ("negative quantity", |d| d["items"][0]["quantity"] = json!(-1), Rejected, "MALFORMED_ORDER"),
        ("quantity as text", |d| d["items"][0]["quantity"] = json!("2"), Rejected, "MALFORMED_ORDER"),
        ("quantity beyond u32", |d| d["items"][0]["quantity"] = json!(5_000_000_000u64), Rejected, "MALFORMED_ORDER"),
        ("zero price", |d| d["items"][0]["unitPrice"] = json!(0), Rejected, "INVALID_PRICE"),
        ("fractional price", |d| d["items"][0]["unitPrice"] = json!(12.5), Rejected, "MALFORMED_ORDER"),
        ("negative price", |d| d["items"][0]["unitPrice"] = json!(-1250), Rejected, "MALFORMED_ORDER"),
        ("total overflows", |d| d["items"][0]["unitPrice"] = json!(u64::MAX), Rejected, "AMOUNT_TOO_LARGE"),
        // Prices come from the catalogue (BOOK-1 12.50, PEN-1 1.99 EUR; infra/local/catalogue.json).
        ("price below the catalogue's", |d| d["items"][0]["unitPrice"] = json!(1), Rejected, "PRICE_MISMATCH"),
        ("price one cent below", |d| d["items"][0]["unitPrice"] = json!(1249), Rejected, "PRICE_MISMATCH"),
        ("price above the catalogue's", |d| d["items"][1]["unitPrice"] = json!(200), Rejected, "PRICE_MISMATCH"),
        ("price as text", |d| d["items"][0]["unitPrice"] = json!("1250"), Rejected, "MALFORMED_ORDER"),
        ("purchase amount below the total", |d| d["amount"] = json!(1), Rejected, "PRICE_MISMATCH"),
        ("unpriced lines, purchase amount below", |d| { for item in d["items"].as_array_mut().unwrap() { item.as_object_mut().unwrap().remove("unitPrice"); } d["amount"] = json!(3); }, Rejected, "PRICE_MISMATCH"),
        ("unknown sku", |d| d["items"][1]["sku"] = json!("NO-SUCH-SKU"), Rejected, "UNKNOWN_SKU"),
        ("sku in another case", |d| d["items"][0]["sku"] = json!("book-1"), Rejected, "UNKNOWN_SKU"),
        ("inactive sku", |d| d["items"][1] = json!({"sku": "OLD-1", "quantity": 1}), Rejected, "SKU_INACTIVE"),
        ("inactive sku at its last price", |d| d["items"][1] = json!({"sku": "OLD-1", "quantity": 1, "unitPrice": 500}), Rejected, "SKU_INACTIVE"),
        ("order currency not the skus'", |d| d["currency"] = json!("USD"), Rejected, "CURRENCY_MISMATCH"),
        ("a dollar sku in a euro order", |d| d["items"][1] = json!({"sku": "CAP-US", "quantity": 1}), Rejected, "CURRENCY_MISMATCH"),
        ("catalogue total over the limit", |d| d["items"][0] = json!({"sku": "BOOK-1", "quantity": 4_000_000_000u32}), Rejected, "AMOUNT_TOO_LARGE"),
        ("duplicate sku", |d| d["items"][1]["sku"] = json!("BOOK-1"), Rejected, "DUPLICATE_SKU"),
        ("empty sku", |d| d["items"][0]["sku"] = json!(""), Rejected, "INVALID_ITEM"),
        ("oversized field (100 KiB sku)", |d| d["items"][0]["sku"] = json!("S".repeat(100 * 1024)), Rejected, "INVALID_ITEM"),
        ("too many lines", |d| d["items"] = json!((0..51).map(|i| json!({"sku": format!("S{i}"), "quantity": 1, "unitPrice": 1})).collect::<Vec<_>>()), Rejected, "TOO_MANY_ITEMS"),
        ("missing payment token", |d| { d.as_object_mut().unwrap().remove("paymentToken"); }, Rejected, "MISSING_PAYMENT_TOKEN"),
        ("blank payment token", |d| d["paymentToken"] = json!(" "), Rejected, "MISSING_PAYMENT_TOKEN"),
        ("unknown payment token", |d| d["paymentToken"] = json!("tok_bogus"), Failed, "PAYMENT_DECLINED"),
        ("refund without refundOf", |d| { *d = refund(d["orderId"].as_str().unwrap(), "alice", "x", None); d.as_object_mut().unwrap().remove("refundOf"); }, Rejected, "MISSING_REFUND_OF"),
        ("refund of zero", |d| *d = refund(d["orderId"].as_str().unwrap(), "alice", "some-order", Some(0)), Rejected, "INVALID_AMOUNT"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_order_is_recorded_and_announced_with_its_reason() {
    let run = Run::new().await;
    let cases = corpus();
    assert!(cases.len() >= 25);
    let mut ids = Vec::new();
    for (i, (_, edit, _, _)) in cases.iter().enumerate() {
        let mut detail = base(&order_id(&format!("bad{i}")));
        edit(&mut detail);
        ids.push(detail["orderId"].as_str().unwrap().to_string());
        run.submit(detail).await;
    }
    let all = run.all_until_terminal(&ids).await;
    for ((kind, _, status, reason), id) in cases.iter().zip(&ids) {
        let last = all[id].last().unwrap();
        assert_eq!((last.status, last.reason.as_deref()), (*status, Some(*reason)), "{kind}");
        let task = run.task(id).await;
        assert_eq!(task.reason.map(|r| r.as_str()), Some(*reason), "{kind}: recorded");
    }
    run.close().await;
}

/// Messages with no order in them: each ends in its queue's dead-letter queue, named in the logs.
#[tokio::test(flavor = "multi_thread")]
async fn messages_with_no_order_in_them_end_in_a_dead_letter_queue() {
    let run = Run::new().await;
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let marker = order_id("poison");
    let url = |key: &str| stack().output(key).unwrap().to_string();
    let poison = [
        ("IntakeQueueUrl", "intake", format!("not json {marker}")),
        ("IntakeQueueUrl", "intake", json!({"detail-type": "SomethingElse", "source": "x", "detail": {"marker": marker}}).to_string()),
        ("IntakeQueueUrl", "intake", json!({"detail-type": "OrderSubmitted", "source": "taskflow.orders", "detail": {"owner": marker}}).to_string()),
        ("IntakeQueueUrl", "intake", json!({"detail-type": "OrderSubmitted", "source": "taskflow.orders", "detail": {"orderId": 7, "m": marker}}).to_string()),
        ("PurchaseQueueUrl", "purchase", json!({"order": {"orderId": marker}}).to_string()),
        ("PurchaseQueueUrl", "purchase", format!("{{{{{marker}")),
        ("NotificationQueueUrl", "notification", json!({"taskToken": 5, "m": marker}).to_string()),
        ("RefundQueueUrl", "refund", format!("\u{0}binary{marker}")),
    ];
    for (queue, _, body) in &poison {
        sqs.send_message().queue_url(url(queue)).message_body(body).send().await.unwrap();
    }
    // An order event without an order id, published as a producer would.
    run.submit(json!({"schemaVersion": 1, "owner": marker})).await;

    let expected = |dlq: &str| poison.iter().filter(|(_, d, _)| *d == dlq).count() + usize::from(dlq == "intake");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut found = std::collections::BTreeMap::new();
        for dlq in taskflow::dlq::queues(stack()) {
            let mut n = 0;
            taskflow::dlq::drain(&sqs, &dlq.url, false, 1000, |dead, _| {
                n += usize::from(dead.body.contains(&marker));
                async { Ok(()) }
            })
            .await
            .unwrap();
            found.insert(dlq.name.clone(), n);
        }
        let done = ["intake", "purchase", "notification", "refund"].iter().all(|q| found[*q] == expected(q));
        if done {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all poison reached a DLQ: {found:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    run.close().await;
}

/// Oversize and malformed orders, put on the bus by an outside client (the AWS SDK): those
/// EventBridge takes end REJECTED with their named reason and their status event, none in a
/// dead-letter queue; those it refuses are refused to the client, with AWS's error.
#[tokio::test(flavor = "multi_thread")]
async fn oversize_and_malformed_orders_from_an_outside_client_end_rejected_with_their_reason() {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    let run = Run::new().await;
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let bus = stack().output("EventBusName").unwrap().to_string();
    let entry = |detail: String| PutEventsRequestEntry::builder().event_bus_name(&bus).source("taskflow.orders").detail_type("OrderSubmitted").detail(detail).build();

    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("10 KB owner", Box::new(|d| d["owner"] = json!("o".repeat(10 * 1024))), "INVALID_OWNER"),
        ("900 KB payment token", Box::new(|d| d["paymentToken"] = json!("t".repeat(900 * 1024))), "FIELD_TOO_LONG"),
        ("500 KB quantity as text (its parse error quotes it)", Box::new(|d| d["items"][0]["quantity"] = json!("q".repeat(500 * 1024))), "MALFORMED_ORDER"),
        ("500 KB currency", Box::new(|d| d["currency"] = json!("E".repeat(500 * 1024))), "UNSUPPORTED_CURRENCY"),
        ("500 KB sku", Box::new(|d| d["items"][0]["sku"] = json!("S".repeat(500 * 1024))), "INVALID_ITEM"),
        ("refund of a 5 KB order id", Box::new(|d| *d = refund(d["orderId"].as_str().unwrap(), "alice", &"r".repeat(5 * 1024), None)), "FIELD_TOO_LONG"),
        ("1000-byte order id", Box::new(|d| d["orderId"] = json!(format!("{}-{}", d["orderId"].as_str().unwrap(), "i".repeat(960)))), "INVALID_ORDER_ID"),
        ("an unknown field nested 300 levels deep", Box::new(|d| d["extra"] = (0..300).fold(json!(1), |inner, _| json!([inner]))), "MALFORMED_ORDER"),
        ("900 KB of unknown fields and a 100 KB owner", Box::new(|d| { d["extra"] = json!("u".repeat(900 * 1024)); d["owner"] = json!("o".repeat(100 * 1024)); }), "INVALID_OWNER"),
    ];
    let mut ids = Vec::new();
    for (i, (kind, edit, _)) in cases.iter().enumerate() {
        let mut detail = base(&order_id(&format!("big{i}")));
        edit(&mut detail);
        ids.push(detail["orderId"].as_str().unwrap().to_string());
        let out = events.put_events().entries(entry(detail.to_string())).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0, "{kind}: {:?}", out.entries);
    }
    let all = run.all_until_terminal(&ids).await;
    for ((kind, _, reason), id) in cases.iter().zip(&ids) {
        let last = all[id].last().unwrap();
        assert_eq!((last.status, last.reason.as_deref()), (TaskStatus::Rejected, Some(*reason)), "{kind}");
        let task = run.task(id).await;
        assert_eq!(task.reason.map(|r| r.as_str()), Some(*reason), "{kind}: recorded");
        assert!(task.stored_size() < 8 * 1024, "{kind}: the rejection record is {} bytes", task.stored_size());
    }

    // What EventBridge itself refuses never becomes an order: the client is told, per entry or
    // for the call, as AWS tells it.
    let marker = order_id("refused");
    let out = events
        .put_events()
        .entries(entry(json!(format!("a string detail {marker}")).to_string()))
        .entries(entry(json!([marker.clone()]).to_string()))
        .send()
        .await
        .unwrap();
    let codes: Vec<_> = out.entries().iter().map(|e| e.error_code().unwrap_or("ok")).collect();
    assert_eq!(codes, ["MalformedDetail", "MalformedDetail"]);
    let mut too_big = base(&marker);
    too_big["paymentToken"] = json!("t".repeat(1024 * 1024));
    let err = events.put_events().entries(entry(too_big.to_string())).send().await.unwrap_err().into_service_error();
    assert_eq!(aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&err), Some("ValidationException"), "{err:?}");

    // None of them is in any dead-letter queue.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    for dlq in taskflow::dlq::queues(stack()) {
        let mut found = 0;
        taskflow::dlq::drain(&sqs, &dlq.url, false, 1000, |dead, _| {
            found += usize::from(ids.iter().any(|id| dead.body.contains(id.as_str())) || dead.body.contains(&marker));
            async { Ok(()) }
        })
        .await
        .unwrap();
        assert_eq!(found, 0, "dead letters of these orders in {}", dlq.name);
    }
    run.close().await;
}

/// A ledger entry's refunds are bounded (it must stay under DynamoDB's 400 KB): the refund past
/// `MAX_REFUNDS_PER_ORDER` is REJECTED `TOO_MANY_REFUNDS`, and the one before it still completes.
#[tokio::test(flavor = "multi_thread")]
async fn refunds_past_the_bound_are_rejected_with_their_reason() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use taskflow_contracts::limits::MAX_REFUNDS_PER_ORDER;
    let run = Run::new().await;
    let original = order_id("many-refunds");
    run.submit(base(&original)).await;
    assert_eq!(run.events_until_terminal(&original).await.last().unwrap().status, TaskStatus::Completed);

    // MAX - 1 refunds of one cent each already on the entry (as if refunded one by one).
    let mut refunds = std::collections::HashMap::new();
    for i in 0..MAX_REFUNDS_PER_ORDER - 1 {
        refunds.insert(format!("earlier-{i}"), AttributeValue::N("1".into()));
    }
    aws_sdk_dynamodb::Client::new(&run.aws)
        .update_item()
        .table_name(stack().output("LedgerTableName").unwrap())
        .key("taskId", AttributeValue::S(taskflow_contracts::keys::task_id("alice", &original)))
        .update_expression("SET refunds = :r, refunded = :n")
        .expression_attribute_values(":r", AttributeValue::M(refunds))
        .expression_attribute_values(":n", AttributeValue::N((MAX_REFUNDS_PER_ORDER - 1).to_string()))
        .send()
        .await
        .unwrap();

    let last = order_id("refund-last");
    run.submit(refund(&last, "alice", &original, Some(1))).await;
    assert_eq!(run.events_until_terminal(&last).await.last().unwrap().status, TaskStatus::Completed);
    let over = order_id("refund-over");
    run.submit(refund(&over, "alice", &original, Some(1))).await;
    let end = run.events_until_terminal(&over).await.last().unwrap().clone();
    assert_eq!((end.status, end.reason.as_deref()), (TaskStatus::Rejected, Some("TOO_MANY_REFUNDS")));
    let entry = run.ledger(&original).await.unwrap();
    assert_eq!((entry.refunds.len(), entry.refunded), (MAX_REFUNDS_PER_ORDER, MAX_REFUNDS_PER_ORDER as u64));
    run.close().await;
}
