//! `BENCH_ONLY=steady`: only the steady load (our workers, then the null workers), as `make
//! bench` runs it — after the burst (its throughput printed too), unless `BENCH_STEADY_BURST=0` — with p50/p95 printed and
//! each order's latency (in submission order) written to `target/bench/bench-steady.json`, and
//! each function's invocations and mean billed ms. `BENCH_STEADY_TRACE_EXPORTER` (`otlp`,
//! `daemon`, `none`) sets the functions' trace exporter, to see what the flush costs.

use crate::stack;
use anyhow::Result;
use serde_json::json;
use std::path::Path;
use taskflow::local::LocalStack;

pub async fn run(out: &Path, rate: f64, seconds: f64, burst_rate: f64, burst_orders: f64) -> Result<()> {
    let burst = std::env::var("BENCH_STEADY_BURST").as_deref() != Ok("0");
    let mut results = Vec::new();
    for (name, null) in [("taskflow", false), ("null worker", true)] {
        let mut options = stack::options(out, null);
        if let Ok(exporter) = std::env::var("BENCH_STEADY_TRACE_EXPORTER") {
            options.extra_env.insert("TRACE_EXPORTER".into(), exporter);
        }
        let stack = LocalStack::start(options).await?;
        let measured = async {
            // Each emulator process's CPU seconds (the main one first, then the storage one's).
            let cpu_of = |stack: &LocalStack| -> Option<Vec<f64>> { stack.emulator_pids().into_iter().map(cpu_seconds).collect() };
            let before = cpu_of(&stack);
            stack.usage(true).await?;
            stack.emulator_cpu(true).await?;
            let burst = match burst {
                true => Some(stack::load(&stack, burst_rate, burst_orders / burst_rate, "burst").await?),
                false => None,
            };
            if let (Some(before), Some(after), Some(b)) = (before, cpu_of(&stack), &burst) {
                let per_order: Vec<f64> = after.iter().zip(&before).map(|(a, b0)| (a - b0) * 1000.0 / b.orders as f64).collect();
                let each: Vec<String> = per_order.iter().map(|ms| format!("{ms:.1}")).collect();
                println!(
                    "{name}: the emulators' CPU over the burst: {:.1} ms per order ({} ms: the main process, the storage one's)",
                    per_order.iter().sum::<f64>(),
                    each.join(" + ")
                );
                // What the emulator served for it, per order (requests, and what it counts of them).
                let usage = stack.usage(false).await?;
                let per_order: Vec<String> = usage.iter().filter(|(_, n)| **n > 0.0).map(|(k, n)| format!("{k} {:.2}", n / b.orders as f64)).collect();
                println!("{name}: the emulator's counts over the burst, per order: {}", per_order.join("; "));
                // Where its CPU went: each operation's requests and request-thread CPU per order,
                // the costliest first.
                let mut cpu: Vec<(String, (u64, u64))> = stack.emulator_cpu(false).await?.into_iter().collect();
                cpu.sort_by_key(|(_, (_, us))| std::cmp::Reverse(*us));
                let orders = b.orders as f64;
                let total: u64 = cpu.iter().map(|(_, (_, us))| us).sum();
                let per_op: Vec<String> = cpu
                    .iter()
                    .map(|(op, (n, us))| format!("{op} {:.2}×{:.2} ms = {:.1} ms", *n as f64 / orders, *us as f64 / 1000.0 / (*n).max(1) as f64, *us as f64 / 1000.0 / orders))
                    .collect();
                println!("{name}: the emulator's request CPU over the burst, {:.1} ms per order: {}", total as f64 / 1000.0 / orders, per_op.join("; "));
            }
            if burst.is_some() {
                // As `make bench` does: the steady load starts once the burst's tail is through.
                stack::quiet_after_burst(&stack).await?;
            }
            anyhow::Ok((burst, stack::load(&stack, rate, seconds, "load").await?))
        }
        .await;
        let per_function: Vec<String> = stack
            .functions
            .values()
            .map(|f| {
                let calls = f.counters.invocations.load(std::sync::atomic::Ordering::Relaxed);
                let billed = f.counters.billed_ms.load(std::sync::atomic::Ordering::Relaxed);
                format!("{} {} calls {:.0} ms/call", f.spec.binary, calls, billed as f64 / calls.max(1) as f64)
            })
            .collect();
        println!("{name}: {}", per_function.join("; "));
        stack.stop().await;
        let (burst, load) = measured?;
        if let Some(burst) = &burst {
            println!("{name}: burst of {} orders: {:.1} orders/s", burst.orders, burst.throughput_per_s);
        }
        println!("{name}: {} orders at {rate}/s: p50 {:.0} ms, p95 {:.0} ms (p95/p50 {:.2})", load.orders, load.p50_ms, load.p95_ms, load.p95_ms / load.p50_ms);
        results.push(json!({"workers": name, "burstPerS": burst.as_ref().map(|b| b.throughput_per_s), "p50Ms": load.p50_ms, "p95Ms": load.p95_ms, "latenciesMs": load.latencies_ms}));
    }
    std::fs::write(out.join("bench-steady.json"), serde_json::to_string_pretty(&json!({"afterBurst": burst, "runs": results}))? + "\n")?;
    Ok(())
}

/// A process's CPU time so far (user + system, `/proc/PID/stat`, Linux), in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
