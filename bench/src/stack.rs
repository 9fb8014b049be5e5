//! Figures taken on the real local stack (moto + the release function binaries): what each path
//! of an order uses (the counts the cost model prices), and throughput and latency at a steady
//! load, next to the same stack with null workers.

use anyhow::{bail, Context, Result};
use aws_sdk_sfn::types::ExecutionStatus;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use taskflow::client::Client;
use taskflow::local::{LocalStack, Options};
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, TaskStatus};

/// The sku every bench order buys, one unit of it (the capacity model's hot stock item).
pub const BENCH_SKU: &str = "BOOK-1";

/// One path an order can take, as the bench drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    PurchaseCompleted,
    PurchaseDeclined,
    RefundCompleted,
    Rejected,
}

impl Path {
    pub const ALL: [Path; 4] = [Path::PurchaseCompleted, Path::PurchaseDeclined, Path::RefundCompleted, Path::Rejected];

    pub fn name(self) -> &'static str {
        match self {
            Path::PurchaseCompleted => "purchase completed",
            Path::PurchaseDeclined => "purchase declined",
            Path::RefundCompleted => "refund completed",
            Path::Rejected => "order rejected",
        }
    }

    fn expected(self) -> TaskStatus {
        match self {
            Path::PurchaseCompleted | Path::RefundCompleted => TaskStatus::Completed,
            Path::PurchaseDeclined => TaskStatus::Failed,
            Path::Rejected => TaskStatus::Rejected,
        }
    }

    pub fn starts_workflow(self) -> bool {
        self != Path::Rejected
    }

    /// The `i`th order of this path in run `run`; refunds refund the purchases of the same run.
    fn order(self, run: &str, i: usize) -> OrderSubmitted {
        let id = |path: &str| format!("bench-{run}-{path}-{i}");
        let purchase = |order_id: String, items: Vec<OrderItem>, token: &str| OrderSubmitted {
            schema_version: 1,
            order_id,
            owner: format!("owner-{}", i % 10),
            kind: OrderKind::Purchase,
            items,
            currency: "EUR".into(),
            payment_token: Some(PaymentToken::new(token)),
            refund_of: None,
            amount: None,
            attachments: Vec::new(),
        };
        // No price: intake charges the catalogue's (1250 in infra/local/catalogue.json).
        let book = || vec![OrderItem { sku: BENCH_SKU.into(), quantity: 1, unit_price: None }];
        match self {
            Path::PurchaseCompleted => purchase(id("purchase"), book(), "tok_approve"),
            Path::PurchaseDeclined => purchase(id("declined"), book(), "tok_decline"),
            Path::RefundCompleted => OrderSubmitted {
                kind: OrderKind::Refund,
                items: vec![],
                payment_token: None,
                refund_of: Some(id("purchase")),
                ..purchase(id("refund"), vec![], "")
            },
            // Nothing to buy: intake refuses it.
            Path::Rejected => purchase(id("rejected"), vec![], "tok_approve"),
        }
    }
}

/// What one order of a path used, averaged over the path's orders.
#[derive(Debug, Clone)]
pub struct PathUsage {
    pub path: Path,
    /// States entered, from each execution's history (what Step Functions bills).
    pub transitions: f64,
    /// Per function: invocations and billed milliseconds (from the Lambda host).
    pub invocations: BTreeMap<String, f64>,
    pub billed_ms: BTreeMap<String, f64>,
    /// The emulator's counts (`service.Item`), empty polls left out.
    pub usage: BTreeMap<String, f64>,
}

impl PathUsage {
    pub fn sqs_requests(&self) -> f64 {
        self.usage.iter().filter(|(k, _)| k.starts_with("sqs.") && !k.ends_with(".empty")).map(|(_, v)| v).sum()
    }

    pub fn get(&self, key: &str) -> f64 {
        self.usage.get(key).copied().unwrap_or(0.0)
    }
}

/// The options of the bench's local stack in `out`: ours (`stack-ours`), or with null workers
/// standing in for the purchase, refund and notification workers (`stack-null`).
pub fn options(out: &std::path::Path, null_workers: bool) -> Options {
    let mut options = Options::new(out.join(if null_workers { "stack-null" } else { "stack-ours" }));
    if null_workers {
        for worker in ["purchase", "refund", "notification"] {
            options.stand_ins.insert(worker.into(), "null-worker".into());
        }
    }
    options
}

fn host_counts(stack: &LocalStack) -> BTreeMap<String, (u64, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    stack
        .functions
        .values()
        .map(|f| (f.spec.binary.clone(), (f.counters.invocations.load(Relaxed), f.counters.billed_ms.load(Relaxed))))
        .collect()
}

/// The emulator's counts without the empty polls (which go on while nothing happens).
async fn usage(stack: &LocalStack, reset: bool) -> Result<BTreeMap<String, f64>> {
    Ok(stack.usage(reset).await?.into_iter().filter(|(k, _)| !k.ends_with(".empty")).collect())
}

/// Waits until nothing moves: no invocation and no billed request for `quiet` in a row.
async fn settle(stack: &LocalStack, quiet: Duration, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = (host_counts(stack), usage(stack, false).await?);
    let mut still_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = (host_counts(stack), usage(stack, false).await?);
        if now != last {
            if Instant::now() > deadline {
                bail!("the stack did not settle within {limit:?}: {:?} became {:?}", last, now);
            }
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the stack did not settle within {limit:?}");
        }
    }
}

/// An order's execution: in the workflow of its kind, named by its task id (owner and order id).
fn execution_arn(stack: &LocalStack, order: &OrderSubmitted) -> Result<String> {
    let workflow = match order.kind {
        OrderKind::Purchase => "PurchaseWorkflowArn",
        OrderKind::Refund => "RefundWorkflowArn",
    };
    let name = taskflow_contracts::keys::task_id(&order.owner, &order.order_id);
    Ok(taskflow_intake::workflows::execution_arn(stack.info.output(workflow)?, &name))
}

/// Waits until every order's execution has ended; returns each one's stop time.
async fn executions_ended(sfn: &aws_sdk_sfn::Client, stack: &LocalStack, orders: &[OrderSubmitted], limit: Duration) -> Result<Vec<SystemTime>> {
    let deadline = Instant::now() + limit;
    let mut stops = vec![None; orders.len()];
    loop {
        for (i, order) in orders.iter().enumerate() {
            if stops[i].is_some() {
                continue;
            }
            match sfn.describe_execution().execution_arn(execution_arn(stack, order)?).send().await {
                Ok(out) if out.status != ExecutionStatus::Running => {
                    let stop = out.stop_date.context("an ended execution has a stop date")?;
                    stops[i] = Some(SystemTime::try_from(stop).context("stop date")?);
                }
                _ => {}
            }
        }
        if stops.iter().all(Option::is_some) {
            return Ok(stops.into_iter().flatten().collect());
        }
        if Instant::now() > deadline {
            bail!("{} of {} executions still running after {limit:?}", stops.iter().filter(|s| s.is_none()).count(), orders.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `per_path` orders down each path, one path at a time, and counts what they used.
pub async fn measure_paths(stack: &LocalStack, per_path: usize) -> Result<Vec<PathUsage>> {
    let client = Client::connect(&stack.info).await?;
    let sfn = aws_sdk_sfn::Client::new(&client.aws);
    let run = format!("{:x}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_millis());
    let mut results = Vec::new();
    for path in Path::ALL {
        settle(stack, Duration::from_secs(1), Duration::from_secs(60)).await?;
        let before = host_counts(stack);
        stack.usage(true).await?;
        let orders: Vec<OrderSubmitted> = (0..per_path).map(|i| path.order(&run, i)).collect();
        for order in &orders {
            client.submit(order).await?;
        }
        if path.starts_workflow() {
            executions_ended(&sfn, stack, &orders, Duration::from_secs(120)).await?;
        }
        // The status events of the last changes are still on their way after the execution.
        settle(stack, Duration::from_secs(2), Duration::from_secs(60)).await?;
        let used = usage(stack, false).await?;
        let after = host_counts(stack);

        // Only now read back (reads of our own would count): every order went the path's way.
        for order in &orders {
            let id = &order.order_id;
            let task = client.find(Some(&order.owner), id).await?.with_context(|| format!("no task for {id}"))?;
            if task.status != path.expected() {
                bail!("{id} ({}) ended {} (reason {:?}), not {}", path.name(), task.status, task.reason, path.expected());
            }
        }
        let mut transitions = 0usize;
        if path.starts_workflow() {
            for order in &orders {
                let mut pages = sfn.get_execution_history().execution_arn(execution_arn(stack, order)?).into_paginator().items().send();
                while let Some(event) = pages.next().await {
                    if event?.r#type.as_str().ends_with("StateEntered") {
                        transitions += 1;
                    }
                }
            }
        }
        let n = per_path as f64;
        let mut invocations = BTreeMap::new();
        let mut billed_ms = BTreeMap::new();
        for (function, (calls, ms)) in &after {
            let (calls_before, ms_before) = before.get(function).copied().unwrap_or_default();
            if calls > &calls_before {
                invocations.insert(function.clone(), (calls - calls_before) as f64 / n);
                billed_ms.insert(function.clone(), (ms - ms_before) as f64 / n);
            }
        }
        results.push(PathUsage {
            path,

            transitions: transitions as f64 / n,
            invocations,
            billed_ms,
            usage: used.into_iter().map(|(k, v)| (k, v / n)).collect(),
        });
    }
    Ok(results)
}

/// A burst of `burst_orders` purchases at `burst_rate` a second (throughput: what the stack can
/// take), then, once the stack is quiet again (the burst's last status events delivered), a
/// steady load of `rate` a second for `seconds` (latency: well under what it can take). The wait
/// is so that the first orders of the steady load cannot meet the burst's tail.
pub async fn burst_then_steady(stack: &LocalStack, burst_rate: f64, burst_orders: f64, rate: f64, seconds: f64) -> Result<(Load, Load)> {
    let burst = load(stack, burst_rate, burst_orders / burst_rate, "burst").await?;
    quiet_after_burst(stack).await?;
    let steady = load(stack, rate, seconds, "load").await?;
    Ok((burst, steady))
}

/// Waits for the stack to be quiet after a burst (no invocation and no billed request for 1 s,
/// at most 60 s), before a steady load.
pub async fn quiet_after_burst(stack: &LocalStack) -> Result<()> {
    settle(stack, Duration::from_secs(1), Duration::from_secs(60)).await
}

/// Orders per second and latency at a steady offered load.
#[derive(Debug, Clone)]
pub struct Load {
    pub offered_per_s: f64,
    pub orders: usize,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Each order's latency, in submission order.
    pub latencies_ms: Vec<f64>,
    /// Per function: the peak resident memory of its process over the whole run.
    pub peak_rss_mb: BTreeMap<String, f64>,
}

/// Submits purchases at `rate` a second for `seconds`, waits for every workflow to end, and
/// measures from each submission to its execution's end (owner notified). Throughput is orders
/// over the time from the first submission to the last end.
pub async fn load(stack: &LocalStack, rate: f64, seconds: f64, tag: &str) -> Result<Load> {
    let client = Client::connect(&stack.info).await?;
    let sfn = aws_sdk_sfn::Client::new(&client.aws);
    let count = (rate * seconds).round() as usize;
    let run = format!("{tag}{:x}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_millis());
    let orders: Vec<OrderSubmitted> = (0..count).map(|i| Path::PurchaseCompleted.order(&run, i)).collect();
    let started = tokio::time::Instant::now();
    let mut submitted = Vec::with_capacity(count);
    for (i, order) in orders.iter().enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
        submitted.push(SystemTime::now());
        client.submit(order).await?;
    }
    let stops = executions_ended(&sfn, stack, &orders, Duration::from_secs(600)).await?;
    let in_order: Vec<f64> = submitted
        .iter()
        .zip(&stops)
        .map(|(s, e)| e.duration_since(*s).unwrap_or_default().as_secs_f64() * 1000.0)
        .collect();
    let mut latencies = in_order.clone();
    latencies.sort_by(f64::total_cmp);
    let last = stops.iter().max().copied().context("at least one order")?;
    let span = last.duration_since(submitted[0]).unwrap_or_default().as_secs_f64();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Ok(Load {
        offered_per_s: rate,
        orders: count,
        throughput_per_s: count as f64 / span,
        p50_ms: percentile(0.5),
        p95_ms: percentile(0.95),
        latencies_ms: in_order,
        peak_rss_mb: stack.functions.values().filter_map(|f| Some((f.spec.binary.clone(), f.counters.peak_rss_mb()?))).collect(),
    })
}
