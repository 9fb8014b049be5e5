//! The emulator keeps DynamoDB's promises that taskflow relies on: a cancelled transaction never
//! undoes other requests' committed writes, and concurrent updates of one item are all applied.
//! Plain moto breaks the first under load (its rollback restores whole-table copies, taken before
//! other requests wrote); `infra/local/emulator.py` fixes that. Without it, stock decrements of
//! concurrent reservations vanish.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest, ScalarAttributeType,
    TransactWriteItem, Update, WriteRequest,
};
use taskflow_e2e::Run;

async fn table(db: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    db.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name(key).attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn take_one(table: &str, key: &str, id: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .key(key, AttributeValue::S(id.into()))
                .update_expression("SET available = available - :q")
                .condition_expression("available >= :q")
                .expression_attribute_values(":q", AttributeValue::N("1".into()))
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_transaction_never_undoes_concurrent_writes() {
    let run = Run::new().await;
    let db = aws_sdk_dynamodb::Client::new(&run.aws);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (stock, entries) = (format!("fidelity-stock-{suffix}"), format!("fidelity-entries-{suffix}"));
    table(&db, &stock, "sku").await;
    table(&db, &entries, "id").await;
    for (sku, available) in [("plenty", "100000"), ("none", "0")] {
        db.put_item()
            .table_name(&stock)
            .item("sku", AttributeValue::S(sku.into()))
            .item("available", AttributeValue::N(available.into()))
            .send()
            .await
            .unwrap();
    }
    // A table big enough that copying it takes a while, as the ledger is after a busy hour.
    for chunk in 0..40 {
        let puts = (0..25)
            .map(|i| {
                let put = PutRequest::builder()
                    .item("id", AttributeValue::S(format!("{}", chunk * 25 + i)))
                    .item("body", AttributeValue::S("x".repeat(200)))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        db.batch_write_item().request_items(&entries, puts).send().await.unwrap();
    }

    const TAKERS: usize = 8;
    const TAKES: usize = 50;
    let mut jobs = Vec::new();
    for _ in 0..TAKERS {
        let (db, stock) = (db.clone(), stock.clone());
        jobs.push(tokio::spawn(async move {
            for _ in 0..TAKES {
                db.transact_write_items().transact_items(take_one(&stock, "sku", "plenty")).send().await.unwrap();
            }
        }));
    }
    for _ in 0..4 {
        let (db, stock, entries) = (db.clone(), stock.clone(), entries.clone());
        jobs.push(tokio::spawn(async move {
            for _ in 0..TAKES {
                // Always cancelled (nothing to take), and touching the big table after the stock, as a
                // reservation touches the ledger after the inventory.
                let touch = TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&entries)
                            .key("id", AttributeValue::S("1".into()))
                            .update_expression("SET body = :b")
                            .expression_attribute_values(":b", AttributeValue::S("y".into()))
                            .build()
                            .unwrap(),
                    )
                    .build();
                let out = db.transact_write_items().transact_items(take_one(&stock, "sku", "none")).transact_items(touch).send().await;
                assert!(out.is_err(), "taking from an empty sku must be cancelled");
            }
        }));
    }
    for job in jobs {
        job.await.unwrap();
    }
    let item = db.get_item().table_name(&stock).key("sku", AttributeValue::S("plenty".into())).consistent_read(true).send().await.unwrap();
    let available: u64 = item.item().unwrap()["available"].as_n().unwrap().parse().unwrap();
    assert_eq!(100000 - available, (TAKERS * TAKES) as u64, "committed decrements were lost");
    run.close().await;
}

/// The emulator's count of one table's request units (what `make bench` prices).
async fn units(table: &str) -> (f64, f64) {
    let usage = taskflow::local::usage(taskflow_e2e::stack(), false).await.unwrap();
    let of = |kind: &str| usage.get(&format!("dynamodb.{kind}.{table}")).copied().unwrap_or(0.0);
    (of("WriteRequestUnits"), of("ReadRequestUnits"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_counts_request_units_as_dynamodb_bills_them() {
    let run = Run::new().await;
    let db = aws_sdk_dynamodb::Client::new(&run.aws);
    let name = format!("billing-{}", uuid::Uuid::new_v4().simple());
    table(&db, &name, "id").await;
    let s = |v: &str| AttributeValue::S(v.into());
    let mut expected = (0.0, 0.0);

    // A small item: one write unit; its read: one read unit (up to 4 KB).
    db.put_item().table_name(&name).item("id", s("small")).send().await.unwrap();
    expected.0 += 1.0;
    db.get_item().table_name(&name).key("id", s("small")).send().await.unwrap();
    expected.1 += 1.0;
    assert_eq!(units(&name).await, expected);

    // 1.5 KB: two write units (per started KB); reading it is still one.
    db.put_item().table_name(&name).item("id", s("big")).item("blob", s(&"x".repeat(1500))).send().await.unwrap();
    expected.0 += 2.0;
    db.get_item().table_name(&name).key("id", s("big")).send().await.unwrap();
    expected.1 += 1.0;
    assert_eq!(units(&name).await, expected);

    // A write refused by its condition still costs a unit; moto reading the old item to answer
    // an update is not a read anyone pays for.
    let refused = db.put_item().table_name(&name).item("id", s("small")).condition_expression("attribute_not_exists(id)").send().await;
    assert!(refused.is_err());
    expected.0 += 1.0;
    db.update_item()
        .table_name(&name)
        .key("id", s("small"))
        .update_expression("SET n = :n")
        .expression_attribute_values(":n", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    expected.0 += 1.0;
    assert_eq!(units(&name).await, expected);

    // A transaction: two units per item, counted once (not again for the writes moto makes inside).
    db.transact_write_items()
        .transact_items(put(&name, "t1"))
        .transact_items(put(&name, "t2"))
        .send()
        .await
        .unwrap();
    expected.0 += 4.0;
    assert_eq!(units(&name).await, expected);
}

fn put(table: &str, id: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(aws_sdk_dynamodb::types::Put::builder().table_name(table).item("id", AttributeValue::S(id.into())).build().unwrap())
        .build()
}

// --- AWS's limits, as an outside client meets them (infra/local/limits.py) --------------------

/// The service error code of a refused call.
fn code<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

fn message<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn step_functions_refuses_what_aws_refuses() {
    use taskflow_contracts::limits::SFN_PAYLOAD_MAX_BYTES;
    let run = Run::new().await;
    let sfn = aws_sdk_sfn::Client::new(&run.aws);
    let machine = taskflow_e2e::stack().output("PurchaseWorkflowArn").unwrap().to_string();
    let start = |name: String, input: String| sfn.start_execution().state_machine_arn(&machine).name(name).input(input).send();

    // Input over 256 KiB, counted in UTF-8 bytes: 87 382 three-byte characters are 262 146 bytes.
    let err = start(taskflow_e2e::order_id("big-input"), format!("{{\"a\":\"{}\"}}", "€".repeat(87_382))).await.unwrap_err();
    let err = err.into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert!(message(&err).contains("'input'") && message(&err).contains(&SFN_PAYLOAD_MAX_BYTES.to_string()), "{}", message(&err));

    // Names: 1–80 characters, none of whitespace, brackets, wildcards, specials, controls.
    let err = start("n".repeat(81), "{}".into()).await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    for bad in ["has space", "a/b", "a:b", "a{b}", "a*", "tab\there", "a#b"] {
        let err = start(format!("{bad}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]), "{}".into()).await.unwrap_err().into_service_error();
        assert_eq!(code(&err), "InvalidName", "{bad:?}: {err:?}");
    }

    // Task answers: output over 256 KiB, error over 256, cause over 32768 characters are refused
    // before the token is even looked at.
    let token = "AAAA".repeat(100);
    let err = sfn.send_task_success().task_token(&token).output(format!("\"{}\"", "x".repeat(SFN_PAYLOAD_MAX_BYTES))).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    let err = sfn.send_task_failure().task_token(&token).error("E".repeat(257)).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    let err = sfn.send_task_failure().task_token(&token).error("E").cause("c".repeat(32_769)).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    // Within the limits, the token is what is wrong.
    let err = sfn.send_task_failure().task_token(&token).error("E").cause("c".repeat(32_768)).send().await.unwrap_err().into_service_error();
    assert_ne!(code(&err), "ValidationException", "{err:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_refuses_what_aws_refuses() {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    use taskflow_contracts::limits::EVENTBRIDGE_ENTRY_MAX_BYTES;
    let run = Run::new().await;
    let events = aws_sdk_eventbridge::Client::new(&run.aws);
    let bus = taskflow_e2e::stack().output("EventBusName").unwrap().to_string();
    // A source no rule matches: these events go nowhere once accepted.
    let entry = |detail: String| PutEventsRequestEntry::builder().event_bus_name(&bus).source("test.limits").detail_type("Probe").detail(detail).build();

    // Detail must be a JSON object; anything else fails its entry, the others go through.
    let out = events
        .put_events()
        .entries(entry("\"a string\"".into()))
        .entries(entry("{\"fine\":true}".into()))
        .entries(entry("[1,2]".into()))
        .entries(entry("42".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_entry_count, 3, "{:?}", out.entries);
    let codes: Vec<_> = out.entries().iter().map(|e| e.error_code().unwrap_or("ok")).collect();
    assert_eq!(codes, ["MalformedDetail", "ok", "MalformedDetail", "MalformedDetail"]);
    assert!(out.entries()[1].event_id().is_some());

    // A detail nested deeper than Python's default recursion limit is still an event, not an
    // HTTP 500 (EventBridge takes a thousand levels and more).
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(1500), "]".repeat(1500));
    let out = events.put_events().entries(entry(deep)).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0, "{:?}", out.entries);

    // Entry size as EventBridge counts it (Source + DetailType + Detail, UTF-8): at the limit it
    // is taken, one byte over the whole call is refused.
    let overhead = "test.limits".len() + "Probe".len() + "{\"a\":\"\"}".len();
    let at_limit = format!("{{\"a\":\"{}\"}}", "x".repeat(EVENTBRIDGE_ENTRY_MAX_BYTES - overhead));
    let out = events.put_events().entries(entry(at_limit)).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0, "{:?}", out.entries);
    let over = format!("{{\"a\":\"{}\"}}", "x".repeat(EVENTBRIDGE_ENTRY_MAX_BYTES - overhead + 1));
    let err = events.put_events().entries(entry(over)).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert!(message(&err).contains("over the limit"), "{}", message(&err));

    // At most 10 entries a call.
    let mut call = events.put_events();
    for i in 0..11 {
        call = call.entries(entry(format!("{{\"i\":{i}}}")));
    }
    let err = call.send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_counts_its_1_mib_in_bytes() {
    use taskflow_contracts::limits::SQS_MESSAGE_MAX_BYTES;
    let run = Run::new().await;
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let url = sqs.create_queue().queue_name(format!("limits-{}", uuid::Uuid::new_v4().simple())).send().await.unwrap().queue_url.unwrap();

    // 1 MiB exactly is taken; so many two-byte characters that they are one byte over is not
    // (plain moto counted characters and took it).
    sqs.send_message().queue_url(&url).message_body("x".repeat(SQS_MESSAGE_MAX_BYTES)).send().await.unwrap();
    let err = sqs.send_message().queue_url(&url).message_body("é".repeat(SQS_MESSAGE_MAX_BYTES / 2 + 1)).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue", "{err:?}");
    assert!(message(&err).contains("1048576"), "{}", message(&err));
    // Attributes count too.
    let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder().data_type("String").string_value("v".repeat(100)).build().unwrap();
    let err = sqs
        .send_message()
        .queue_url(&url)
        .message_body("x".repeat(SQS_MESSAGE_MAX_BYTES - 50))
        .message_attributes("a", attribute)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue", "{err:?}");

    // A batch: all bodies together at most 1 MiB, in bytes.
    let half = |id: &str| aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(id).message_body("é".repeat(SQS_MESSAGE_MAX_BYTES / 4 + 1)).build().unwrap();
    let err = sqs.send_message_batch().queue_url(&url).entries(half("a")).entries(half("b")).send().await.unwrap_err().into_service_error();
    assert!(err.is_batch_request_too_long(), "{err:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_refuses_items_over_400_kb_counted_as_aws_counts_them() {
    use taskflow_contracts::limits::DYNAMODB_ITEM_MAX_BYTES;
    let run = Run::new().await;
    let db = aws_sdk_dynamodb::Client::new(&run.aws);
    let name = format!("limits-{}", uuid::Uuid::new_v4().simple());
    table(&db, &name, "id").await;
    let s = |v: &str| AttributeValue::S(v.into());

    // Names count: "id" + "a" (3 bytes) and "x" + its value make exactly 400 KB.
    let fill = DYNAMODB_ITEM_MAX_BYTES - 3 - 1;
    db.put_item().table_name(&name).item("id", s("a")).item("x", s(&"v".repeat(fill))).send().await.unwrap();
    let err = db.put_item().table_name(&name).item("id", s("b")).item("x", s(&"v".repeat(fill + 1))).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert_eq!(message(&err), "Item size has exceeded the maximum allowed size");

    // A list costs 3 bytes and 1 byte per element: 100 one-byte strings are 3 + 200 bytes.
    let list: Vec<_> = (0..100).map(|_| s("z")).collect();
    let base = DYNAMODB_ITEM_MAX_BYTES - 3 - (1 + 3 + 200);
    db.put_item().table_name(&name).item("id", s("c")).item("l", AttributeValue::L(list.clone())).item("x", s(&"v".repeat(base - 1))).send().await.unwrap();
    // Growing it by one element (2 bytes) through UpdateItem is refused, and the item stays as it was.
    let err = db
        .update_item()
        .table_name(&name)
        .key("id", s("c"))
        .update_expression("SET l = list_append(l, :one)")
        .expression_attribute_values(":one", AttributeValue::L(vec![s("z")]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert_eq!(message(&err), "Item size to update has exceeded the maximum allowed size");
    let item = db.get_item().table_name(&name).key("id", s("c")).consistent_read(true).send().await.unwrap().item.unwrap();
    assert_eq!(item["l"].as_l().unwrap().len(), 100);
    // None of a refused update's actions is applied, not even one before the action that grew
    // the item too large (the emulator put back only that last action's change). 10 bytes free:
    // `a` (1 + 4) fits, `b` (1 + 100) does not.
    db.put_item().table_name(&name).item("id", s("d")).item("x", s(&"v".repeat(fill - 10))).send().await.unwrap();
    let err = db
        .update_item()
        .table_name(&name)
        .key("id", s("d"))
        .update_expression("SET a = :small, b = :big")
        .expression_attribute_values(":small", s("here"))
        .expression_attribute_values(":big", s(&"v".repeat(100)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(message(&err), "Item size to update has exceeded the maximum allowed size");
    let item = db.get_item().table_name(&name).key("id", s("d")).consistent_read(true).send().await.unwrap().item.unwrap();
    assert!(!item.contains_key("a") && !item.contains_key("b"), "a refused update applied one of its actions: {:?}", item.keys());
    // Growing a map by a nested SET (moto did not check nested writes at all).
    db.put_item().table_name(&name).item("id", s("m")).item("m", AttributeValue::M(Default::default())).send().await.unwrap();
    let err = db
        .update_item()
        .table_name(&name)
        .key("id", s("m"))
        .update_expression("SET m.#k = :v")
        .expression_attribute_names("#k", "big")
        .expression_attribute_values(":v", s(&"v".repeat(DYNAMODB_ITEM_MAX_BYTES)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    // An UpdateItem that would create a too-large item leaves nothing behind.
    let err = db
        .update_item()
        .table_name(&name)
        .key("id", s("new"))
        .update_expression("SET x = :v")
        .expression_attribute_values(":v", s(&"v".repeat(DYNAMODB_ITEM_MAX_BYTES)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert!(db.get_item().table_name(&name).key("id", s("new")).consistent_read(true).send().await.unwrap().item.is_none());
    // A transaction's Put too.
    let big = aws_sdk_dynamodb::types::Put::builder().table_name(&name).item("id", s("t")).item("x", s(&"v".repeat(fill + 1))).build().unwrap();
    let err = db.transact_write_items().transact_items(TransactWriteItem::builder().put(big).build()).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_keeps_numbers_as_numbers_not_as_written() {
    let run = Run::new().await;
    let db = aws_sdk_dynamodb::Client::new(&run.aws);
    let name = format!("numbers-{}", uuid::Uuid::new_v4().simple());
    table(&db, &name, "id").await;
    let n = |v: &str| AttributeValue::N(v.into());
    let mut put = db.put_item().table_name(&name).item("id", AttributeValue::S("a".into()));
    let cases = [("1250.00", "1250"), ("0012", "12"), ("1.5E3", "1500"), ("-0.0", "0"), ("+7", "7"), ("0.000100", "0.0001"), ("1E-5", "0.00001")];
    for (i, (written, _)) in cases.iter().enumerate() {
        put = put.item(format!("n{i}"), n(written));
    }
    put.send().await.unwrap();
    let item = db.get_item().table_name(&name).key("id", AttributeValue::S("a".into())).consistent_read(true).send().await.unwrap().item.unwrap();
    for (i, (written, stored)) in cases.iter().enumerate() {
        assert_eq!(item[&format!("n{i}")].as_n().unwrap(), stored, "{written}");
    }
    // A condition compares numbers, not spellings.
    db.update_item()
        .table_name(&name)
        .key("id", AttributeValue::S("a".into()))
        .update_expression("SET n0 = n0 + :one")
        .condition_expression("n0 = :same")
        .expression_attribute_values(":one", n("1.0"))
        .expression_attribute_values(":same", n("1.25e3"))
        .send()
        .await
        .unwrap();
    // What DynamoDB refuses: more than 38 significant digits, magnitudes out of range, not numbers.
    for bad in ["1".repeat(39), "1E126".into(), "1E-131".into(), "12abc".into()] {
        let err = db.put_item().table_name(&name).item("id", AttributeValue::S("b".into())).item("n", n(&bad)).send().await.unwrap_err().into_service_error();
        assert_eq!(code(&err), "ValidationException", "{bad}: {err:?}");
    }
    let thirty_eight = format!("{}.{}", "9".repeat(19), "9".repeat(19));
    db.put_item().table_name(&name).item("id", AttributeValue::S("c".into())).item("n", n(&thirty_eight)).send().await.unwrap();
    run.close().await;
}

// --- The sandbox payment provider: idempotent by key, as a real provider is --------------------

/// The purchase step holds no idempotency record around the charge: the provider's key is what
/// makes it once. So the sandbox must answer every request with a key as it answered the first
/// — the same charge id, or the same decline — concurrent first requests included, and in the
/// common case with one conditional put.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_provider_answers_a_key_as_it_answered_it_first_concurrent_requests_too() {
    use taskflow_shared::payments::{ChargeRequest, PaymentError, PaymentProvider, SandboxPayments};
    let run = Run::new().await;
    let table = taskflow_e2e::stack().output("SandboxChargesTableName").unwrap();
    let provider = std::sync::Arc::new(SandboxPayments::new(&run.aws, table));
    let request = |token: &str| ChargeRequest {
        idempotency_key: format!("sandbox-{}/charge", uuid::Uuid::new_v4().simple()),
        order_id: "o-1".into(),
        amount: 2500,
        currency: "EUR".into(),
        payment_token: taskflow_contracts::PaymentToken::new(token),
    };
    for token in ["tok_approve", "tok_decline"] {
        let request = request(token);
        let (writes_before, _) = units(table).await;
        let first = provider.charge(&request).await;
        let (writes_after, _) = units(table).await;
        assert_eq!(writes_after - writes_before, 1.0, "{token}: one conditional put");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (provider, request) = (provider.clone(), request.clone());
                tokio::spawn(async move { provider.charge(&request).await })
            })
            .collect();
        for handle in handles {
            let answer = handle.await.unwrap();
            assert_eq!(answer, first, "{token}: a repeat gets the first answer");
        }
        match (token, &first) {
            ("tok_approve", Ok(charge)) => {
                assert_eq!(provider.find_charge(&request.idempotency_key).await.unwrap().as_ref(), Some(charge));
            }
            ("tok_decline", Err(PaymentError::Declined { code })) => assert_eq!(code, "card_declined"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Concurrent first requests: one decides, all get its answer.
    let request = request("tok_approve");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (provider, request) = (provider.clone(), request.clone());
            tokio::spawn(async move { provider.charge(&request).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "one charge for the key: {answers:?}");
    run.close().await;
}
