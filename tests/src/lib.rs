//! The end-to-end fixture: one real local stack per test binary — a moto server process, the
//! template deployed on it, the function binaries running — shared by its tests, each of which
//! uses its own order ids. The stack runs on a thread of its own so that it outlives each test's
//! runtime; its processes die with the test process.
//!
//! Tests talk to it only as an outside client would: the AWS SDK against `StackInfo`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use taskflow::local::{LocalStack, Options};
use taskflow::stack::StackInfo;

static STACK: OnceLock<StackInfo> = OnceLock::new();

/// The shared stack, started on first use.
pub fn stack() -> &'static StackInfo {
    STACK.get_or_init(|| {
        let state_dir = std::env::temp_dir().join(format!("taskflow-e2e-{}", std::process::id()));
        let mut options = Options::new(&state_dir);
        // Tests run from the test binary in target/*/deps; the functions are built beside it.
        for binary in ["intake", "purchase", "notification", "publisher"] {
            assert!(
                options.bin_dir.join(binary).is_file(),
                "function binary {binary} missing in {}: run `cargo build --workspace` first (make test does)",
                options.bin_dir.display()
            );
        }
        options.extra_env.insert("RETRY_BASE_DELAY_SECONDS".into(), "1".into());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("local-stack".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on(async move {
                    match LocalStack::start(options).await {
                        Ok(stack) => {
                            eprintln!("local stack up in {:.1} s; logs in {}", stack.started_in.as_secs_f64(), state_dir.join("logs").display());
                            tx.send(Ok(stack.info.clone())).unwrap();
                            std::future::pending::<()>().await;
                        }
                        Err(e) => tx.send(Err(format!("{e:#}"))).unwrap(),
                    }
                })
            })
            .unwrap();
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => panic!("the local stack did not start: {e}"),
            Err(_) => panic!("the local stack did not start within 120 s"),
        }
    })
}

/// A fresh order id per test and run.
pub fn order_id(label: &str) -> String {
    format!("e2e-{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The repository's `contracts/examples`.
pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples").join(name)
}

/// An example PutEvents entry with its detail's `orderId` (and anything else) changed.
pub fn example_entry(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    let entries: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
    let entry = &entries[0];
    let mut detail: serde_json::Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
    edit(&mut detail);
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(entry["Source"].as_str().unwrap())
        .detail_type(entry["DetailType"].as_str().unwrap())
        .event_bus_name(stack().output("EventBusName").unwrap())
        .detail(detail.to_string())
        .build()
}

/// Publishes entries as an outside producer would, failing on any refused entry.
pub async fn publish(aws: &aws_config::SdkConfig, entry: aws_sdk_eventbridge::types::PutEventsRequestEntry) {
    let out = aws_sdk_eventbridge::Client::new(aws).put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count, 0, "{:?}", out.entries);
}
