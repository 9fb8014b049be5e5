//! The trace endpoint slow or down (a black hole: it takes the connection and never answers)
//! never fails an order, and holds each invocation at most the flush bound.
//! One stack of its own (its functions export to the black hole), one order.

use std::time::Duration;
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{log_dir, order_id, purchase, Run};

const BOUND_MS: u64 = 200;
/// Scheduling slack on a shared 2-core machine: what is checked is that the flush gives up at
/// the bound (not the exporter's 10 s default or the SDK's 5 s), not a speed target.
const SLACK_MS: u64 = 800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_completes_when_the_trace_endpoint_never_answers() {
    // Listening, never accepting or reading: connections complete, requests get no answer.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", hole.local_addr().unwrap());
    taskflow_e2e::stack_with(|options| {
        options.extra_env.insert("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), url);
        options.extra_env.insert("TRACE_EXPORTER".into(), "otlp".into());
        options.extra_env.insert("TRACE_FLUSH_TIMEOUT_MS".into(), BOUND_MS.to_string());
    });
    let run = Run::new().await;
    let sku = run.new_sku("BLACKHOLE", 5, 700).await;
    let id = order_id("blackhole");
    run.submit(purchase(&id, "tracy", &[(&sku, 1, 700)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(events.last().unwrap().status, TaskStatus::Completed, "{events:?}");
    // The task still records its trace id: ids are made locally, whatever happens to export.
    assert!(run.task(&id).await.trace_id.is_some());

    // Every invocation's flush gave up at the bound, and said so.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut flushes = Vec::new();
    for entry in std::fs::read_dir(log_dir()).unwrap() {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if line["target"] == "taskflow::otlp" && line["flush_ms"].is_u64() {
                let message = line["message"].as_str().unwrap_or_default().to_string();
                flushes.push((path.file_name().unwrap().to_string_lossy().to_string(), line["flush_ms"].as_u64().unwrap(), message));
            }
        }
    }
    let functions: std::collections::BTreeSet<&str> = flushes.iter().map(|(f, _, _)| f.as_str()).collect();
    for function in ["intake", "purchase", "notification", "publisher"] {
        assert!(functions.iter().any(|f| f.contains(function)), "no abandoned flush logged by {function}: {flushes:?}");
    }
    for (function, took, message) in &flushes {
        assert!(message.contains(&format!("did not answer within {BOUND_MS} ms")), "{function}: {message}");
        assert!(*took <= BOUND_MS + SLACK_MS, "{function}: a flush held its invocation {took} ms (bound {BOUND_MS} ms)");
    }
    drop(hole);
}
