//! The cost model: what one million orders of each path cost on AWS, from the counts measured on
//! the local stack times the list prices in `bench/prices.json`, next to the naive design of
//! `bench/naive/order.asl.json` walked along the same path.

use crate::stack::{Path, PathUsage};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Functions that do the order's work (the naive design runs the same work in its Lambda states);
/// the others (intake, publisher) are plumbing the naive design does in states instead.
const WORKERS: [&str; 3] = ["purchase", "refund", "notification"];

/// The prices and the per-order units, shared with the console (`taskflow::cost`).
pub use taskflow::cost::{Prices, Units};

/// Our design's units for a path, as measured. `memory_mb` is each function's configured memory.
pub fn measured(path: &PathUsage, memory_mb: &BTreeMap<String, u64>) -> Units {
    let gb_seconds = path
        .billed_ms
        .iter()
        .map(|(f, ms)| ms / 1000.0 * memory_mb.get(f).copied().unwrap_or(128) as f64 / 1024.0)
        .sum();
    Units {
        transitions: path.transitions,
        lambda_requests: path.invocations.values().sum(),
        lambda_gb_seconds: gb_seconds,
        sqs_requests: path.sqs_requests(),
        events: path.get("events.Events"),
        write_units: path.get("dynamodb.WriteRequestUnits"),
        read_units: path.get("dynamodb.ReadRequestUnits"),
        s3_puts: path.get("s3.PutObject"),
        traces: path.get("xray.Traces"),
    }
}

/// What the naive definition does on a path: states entered and what they call.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Walk {
    pub transitions: u32,
    pub lambda_invokes: u32,
    pub table_puts: u32,
    pub events_put: u32,
}

/// Follows `definition` from its start with `input` as the facts Choice states read; the Task
/// named `fails` takes its first Catch.
pub fn walk(definition: &Value, input: &Value, fails: Option<&str>) -> Result<Walk> {
    let states = definition["States"].as_object().context("a definition has States")?;
    let mut name = definition["StartAt"].as_str().context("StartAt")?.to_string();
    let mut walk = Walk::default();
    for _ in 0..200 {
        let state = states.get(&name).with_context(|| format!("no state {name}"))?;
        walk.transitions += 1;
        let next = match state["Type"].as_str() {
            Some("Task") => {
                match state["Resource"].as_str().unwrap_or_default() {
                    r if r.ends_with(":lambda:invoke") => walk.lambda_invokes += 1,
                    r if r.ends_with(":dynamodb:putItem") => walk.table_puts += 1,
                    r if r.ends_with(":events:putEvents") => walk.events_put += 1,
                    r => bail!("the naive walk does not know resource {r}"),
                }
                if fails == Some(name.as_str()) {
                    state["Catch"][0]["Next"].as_str().with_context(|| format!("{name} fails but has no Catch"))?.to_string()
                } else {
                    match state["Next"].as_str() {
                        Some(next) => next.to_string(),
                        None => return Ok(walk),
                    }
                }
            }
            Some("Choice") => {
                let chosen = state["Choices"].as_array().into_iter().flatten().find(|rule| {
                    let value = rule["Variable"].as_str().and_then(|v| input.pointer(&v.trim_start_matches('$').replace('.', "/")));
                    value.is_some() && (value == rule.get("StringEquals") || value == rule.get("BooleanEquals"))
                });
                match chosen.map(|r| &r["Next"]).or(state.get("Default")).and_then(Value::as_str) {
                    Some(next) => next.to_string(),
                    None => bail!("choice {name} has no way for {input}"),
                }
            }
            Some("Pass") => state["Next"].as_str().context("Pass has Next")?.to_string(),
            Some("Succeed") | Some("Fail") => return Ok(walk),
            other => bail!("the naive walk does not know state type {other:?}"),
        };
        name = next;
    }
    bail!("the naive walk went round in circles")
}

/// The naive design's units on a path: its own state transitions and invocations from the walk,
/// its workers' compute equal to ours (the same work; at least 1 ms an invocation), and its
/// DynamoDB, S3 and X-Ray use taken as ours — generous to it, since it writes every status from
/// a state besides. It has no queues, no intake and no publisher.
pub fn naive(definition: &Value, path: &PathUsage, memory_mb: &BTreeMap<String, u64>) -> Result<Units> {
    let (input, fails) = match path.path {
        Path::PurchaseCompleted => (json!({"kind": "purchase", "validation": {"valid": true}}), None),
        Path::PurchaseDeclined => (json!({"kind": "purchase", "validation": {"valid": true}}), Some("ChargePayment")),
        Path::RefundCompleted => (json!({"kind": "refund", "validation": {"valid": true}}), None),
        Path::Rejected => (json!({"kind": "purchase", "validation": {"valid": false}}), None),
    };
    let walked = walk(definition, &input, fails)?;
    let worker_ms: f64 = path.billed_ms.iter().filter(|(f, _)| WORKERS.contains(&f.as_str())).map(|(_, ms)| ms).sum();
    let ms = worker_ms.max(walked.lambda_invokes as f64);
    let memory = WORKERS.iter().filter_map(|f| memory_mb.get(*f)).copied().max().unwrap_or(128) as f64;
    let ours = measured(path, memory_mb);
    Ok(Units {
        transitions: walked.transitions as f64,
        lambda_requests: walked.lambda_invokes as f64,
        lambda_gb_seconds: ms / 1000.0 * memory / 1024.0,
        sqs_requests: 0.0,
        // The order event itself, then one per status change.
        events: 1.0 + walked.events_put as f64,
        ..ours
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> Value {
        serde_json::from_str(include_str!("../naive/order.asl.json")).unwrap()
    }

    #[test]
    fn the_naive_design_enters_a_state_per_step_and_two_per_status_change() {
        let valid = json!({"kind": "purchase", "validation": {"valid": true}});
        let cases = [
            // Validate, IsValid, Route, 3 status changes × (record + announce), reserve, charge,
            // receipt, notify.
            ("purchase", valid.clone(), None, Walk { transitions: 13, lambda_invokes: 5, table_puts: 3, events_put: 3 }),
            // …, reserve, charge (fails), release, record + announce FAILED, notify: the end.
            ("declined", valid, Some("ChargePayment"), Walk { transitions: 13, lambda_invokes: 5, table_puts: 3, events_put: 3 }),
            // Validate, IsValid, record + announce REJECTED.
            ("rejected", json!({"kind": "purchase", "validation": {"valid": false}}), None, Walk { transitions: 4, lambda_invokes: 1, table_puts: 1, events_put: 1 }),
        ];
        for (name, input, fails, expected) in cases {
            assert_eq!(walk(&definition(), &input, fails).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn a_walk_fails_loudly_on_a_state_it_cannot_follow() {
        let broken = json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": []}}});
        assert!(walk(&broken, &json!({}), None).is_err());
    }
}
