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
    let endpoint = taskflow_e2e::stack().endpoint.clone().unwrap();
    let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let (status, body) = taskflow::emulator::http(port, "GET", "/taskflow/usage", "").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let usage: serde_json::Value = serde_json::from_str(&body).unwrap();
    let of = |kind: &str| usage[format!("dynamodb.{kind}.{table}")].as_f64().unwrap_or(0.0);
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
