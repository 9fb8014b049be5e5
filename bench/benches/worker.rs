//! Worker cost with criterion: one SQS batch of 10 purchase work messages through the shared
//! task-token driver and the purchase service on in-memory ports (decode, reserve, charge,
//! ledger, task status, answer). Target: ≤ 50 µs per message, so ≤ 500 µs per batch.
//! The purchase writes its metric lines to stdout, as on Lambda: `make bench` sends them to
//! /dev/null (still paid for) and reads criterion's estimate from target/criterion.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use taskflow_bench::{purchase_batches, purchase_driver};

fn worker(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let mut group = c.benchmark_group("worker");
    group.throughput(Throughput::Elements(10));
    group.bench_function("purchase_batch_of_10", |b| {
        b.to_async(&runtime).iter_batched(
            // A fresh service with ten RECEIVED tasks each time: every message is a first delivery.
            || (purchase_driver(0, 10), purchase_batches(0, 10).remove(0)),
            |(driver, batch)| async move {
                let answer = driver.handle_batch(batch).await;
                assert!(answer.batch_item_failures.is_empty(), "a bench message failed");
                // Dropped outside the timing.
                driver
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, worker);
criterion_main!(benches);
