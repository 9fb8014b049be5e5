//! `make bench`: the figures that decide whether taskflow is cheap and fast on AWS, each next to
//! a baseline measured in the same run, printed as one table and written to
//! `target/bench/bench.json`.
//!
//! - Cold start: each function binary (release profile) spawned against a loopback Lambda
//!   Runtime API; the time from spawn to its first `GET /invocation/next` is its init. Median of
//!   `BENCH_SPAWNS` (20) spawns, next to the `hello` binary (lambda_runtime alone, same profile):
//!   the ratio is the figure. With it, the peak RSS of the process at that point (VmHWM: after
//!   init, not yet under load).
//! - Size: each function's arm64 `bootstrap.zip` from `make package`, if it has been run.
//! - Worker cost: CPU time per work message through the shared SQS task-token driver and the
//!   purchase service with in-memory ports (no I/O), over `BENCH_MESSAGES` (20 000) messages.
//!
//! Not yet here (see README, known gaps): local throughput next to a null worker, and the cost
//! model.

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, PurchaseWork, TaskStatus, TaskToken};
use taskflow_purchase::Purchase;
use taskflow_shared::driver::{Driver, Redelivery, RetryPolicy};
use taskflow_shared::fakes::{InMemoryInventory, InMemoryLedger, InMemoryPayments, InMemoryTaskStore, RecordingCallback};
use taskflow_shared::idempotency::InMemoryIdempotency;
use taskflow_shared::tasks::TaskRecord;

const FUNCTIONS: [&str; 6] = ["intake", "purchase", "refund", "notification", "publisher", "api"];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin_dir = std::env::current_exe()?.parent().context("the bench binary has a folder")?.to_path_buf();
    let root = bin_dir.ancestors().find(|p| p.join("Cargo.lock").is_file()).context("inside the workspace")?.to_path_buf();
    let spawns = env_number("BENCH_SPAWNS", 20);
    let messages = env_number("BENCH_MESSAGES", 20_000);

    let baseline = cold_start(&bin_dir.join("hello"), spawns).await?;
    let mut functions = Vec::new();
    for name in FUNCTIONS {
        let start = cold_start(&bin_dir.join(name), spawns).await?;
        let zip = root.join("target/lambda").join(name).join("bootstrap.zip");
        let zip_mb = std::fs::metadata(&zip).ok().map(|m| m.len() as f64 / 1_048_576.0);
        functions.push((name, start, zip_mb));
    }
    let per_message_us = worker_cost(messages).await?;

    let profile = if cfg!(debug_assertions) { "debug profile: use make bench for figures" } else { "release profile" };
    println!("cold start (spawn → first Runtime API poll, median of {spawns}, {profile})");
    println!("{:<14} {:>10} {:>12} {:>12} {:>14}", "function", "init ms", "× hello", "RSS MB", "arm64 zip MB");
    println!("{:<14} {:>10.2} {:>12} {:>12.1} {:>14}", "hello (base)", baseline.median_ms, "1.0", baseline.peak_rss_mb, "-");
    for (name, start, zip) in &functions {
        println!(
            "{:<14} {:>10.2} {:>12.1} {:>12.1} {:>14}",
            name,
            start.median_ms,
            start.median_ms / baseline.median_ms,
            start.peak_rss_mb,
            zip.map_or("(make package)".to_string(), |mb| format!("{mb:.2}{}", if mb <= 4.0 { "" } else { " > 4" }))
        );
    }
    println!();
    println!("worker cost: {per_message_us:.1} µs CPU per purchase work message (driver + purchase, in-memory ports, {messages} messages; target ≤ 50)");

    let report = json!({
        "at": Utc::now(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "coldStart": {
            "spawns": spawns,
            "baseline": {"medianMs": baseline.median_ms, "peakRssAfterInitMb": baseline.peak_rss_mb},
            "functions": functions.iter().map(|(name, s, zip)| json!({
                "function": name, "medianMs": s.median_ms, "ratio": s.median_ms / baseline.median_ms,
                "peakRssAfterInitMb": s.peak_rss_mb, "arm64ZipMb": zip,
            })).collect::<Vec<Value>>(),
        },
        "workerCost": {"messages": messages, "cpuMicrosPerMessage": per_message_us, "targetMicros": 50},
    });
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    println!("written to {}", out.join("bench.json").display());
    Ok(())
}

struct ColdStart {
    median_ms: f64,
    peak_rss_mb: f64,
}

/// Spawns `binary` `spawns` times against a Runtime API that only notes the first poll.
async fn cold_start(binary: &Path, spawns: usize) -> Result<ColdStart> {
    if !binary.is_file() {
        bail!("{} not built: `make bench` builds it (cargo build --release)", binary.display());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let app = axum::Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        axum::routing::get(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Instant::now());
                // Hold the poll: the function waits for work, as between invocations.
                tokio::time::sleep(Duration::from_secs(30)).await;
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut samples = Vec::with_capacity(spawns);
    let mut peak_rss = 0.0f64;
    for _ in 0..spawns {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", binary.file_name().unwrap_or_default())
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_LAMBDA_LOG_LEVEL", "warn")
            .envs(function_environment())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let polled = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .with_context(|| format!("{} did not poll within 10 s (its configuration?)", binary.display()))?
            .context("runtime API gone")?;
        samples.push((polled - started).as_secs_f64() * 1000.0);
        if let Some(pid) = child.id() {
            peak_rss = peak_rss.max(vm_hwm_mb(pid).unwrap_or(0.0));
        }
        let _ = child.kill().await;
    }
    server.abort();
    samples.sort_by(f64::total_cmp);
    Ok(ColdStart { median_ms: samples[samples.len() / 2], peak_rss_mb: peak_rss })
}

/// What every function reads at init (names only: nothing is called before the first event).
fn function_environment() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TASK_TABLE", "bench-tasks"),
        ("LEDGER_TABLE", "bench-ledger"),
        ("INVENTORY_TABLE", "bench-inventory"),
        ("IDEMPOTENCY_TABLE", "bench-idempotency"),
        ("SANDBOX_CHARGES_TABLE", "bench-charges"),
        ("PAYMENT_PROVIDER", "sandbox"),
        ("TASK_BUCKET", "bench-bucket"),
        ("NOTIFIER", "outbox"),
        ("EVENT_BUS_NAME", "bench-bus"),
        ("ORDER_WORKFLOW_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:bench"),
        ("INTAKE_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/bench-intake"),
        ("WORK_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/bench-work"),
        ("REFUND_WINDOW_DAYS", "30"),
        ("MAX_RECEIVE_COUNT", "5"),
    ]
}

/// The process's peak resident set so far, from /proc (Linux).
fn vm_hwm_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Sends stdout to /dev/null until dropped.
struct Quiet {
    saved: i32,
}

impl Quiet {
    fn stdout() -> Quiet {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        unsafe {
            let saved = libc::dup(1);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            libc::close(null);
            Quiet { saved }
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}

struct NoDelay;

#[async_trait]
impl Redelivery for NoDelay {
    async fn delay(&self, _: &str, _: u32) -> Result<(), String> {
        Ok(())
    }
}

fn purchase_order(i: usize) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: format!("bench-{i}"),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 1, unit_price: 1250 }],
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new("tok_approve")),
        refund_of: None,
        amount: None,
    }
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU µs per message: the whole path of one purchase work message (decode, the purchase's
/// steps against in-memory ports, the answer), in batches of 10 as SQS delivers them.
async fn worker_cost(messages: usize) -> Result<f64> {
    let orders: Vec<OrderSubmitted> = (0..messages).map(purchase_order).collect();
    let tasks = orders.iter().map(|o| {
        let mut t = TaskRecord::new(&o.order_id, &o.owner, TaskStatus::Received, None, Utc::now());
        t.kind = Some(o.kind);
        t.amount = o.items_total().unwrap_or(0);
        t.currency = o.currency.clone();
        t
    });
    let driver = Driver {
        name: "purchase",
        worker: Purchase {
            tasks: InMemoryTaskStore::with(tasks),
            payments: InMemoryPayments::default(),
            ledger: InMemoryLedger::default(),
            inventory: InMemoryInventory::with(&[("BOOK-1", messages as u64)]),
            once: Box::new(InMemoryIdempotency::default()),
        },
        callback: RecordingCallback::default(),
        redelivery: NoDelay,
        policy: RetryPolicy { max_attempts: 5, base_delay_secs: 1, max_delay_secs: 20 },
        heartbeat_every: Duration::from_secs(60),
    };
    let batches: Vec<SqsEvent> = orders
        .chunks(10)
        .map(|chunk| {
            let mut event = SqsEvent::default();
            event.records = chunk
                .iter()
                .map(|o| {
                    let work = PurchaseWork { schema_version: 1, task_token: TaskToken::new(format!("t-{}", o.order_id)), order: o.clone(), trace_header: None };
                    let mut m = SqsMessage::default();
                    m.message_id = Some(o.order_id.clone());
                    m.receipt_handle = Some(o.order_id.clone());
                    m.body = Some(serde_json::to_string(&work).expect("work serialises"));
                    m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
                    m
                })
                .collect();
            event
        })
        .collect();
    // The worker writes its metric lines to stdout, as on Lambda; here they go to /dev/null (the
    // write is still paid) so the table stays readable.
    let quiet = Quiet::stdout();
    let before = cpu_time();
    let mut failed = 0;
    for batch in batches {
        failed += driver.handle_batch(batch).await.batch_item_failures.len();
    }
    let spent = cpu_time() - before;
    drop(quiet);
    if failed > 0 {
        bail!("{failed} bench messages failed: the figure would not be of the happy path");
    }
    Ok(spent.as_secs_f64() * 1e6 / messages as f64)
}
